"""A map of the whole paper: every figure, Table 1, every equation group and each appendix section, with
the chapter and section of this book that covers it, or why none does.

:data:`PAPER` is the one home of that map; :func:`write_coverage_page` renders it as ``book/coverage.md``
(at build time, beside the landing page's claims table), adding the statuses of the claims each part
carries from ``results/claims.csv`` when the build has one. Every linked section is checked against the
chapters' sources by the tests, so a renamed heading cannot leave a dead link.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..paths import book_dir, claims_csv

__all__ = ["Place", "Part", "PAPER", "anchor", "coverage_table", "write_coverage_page"]


@dataclass(frozen=True)
class Place:
    """Where a part of the paper is covered: a ``page`` (a chapter name, or ``intro``, ``glossary``,
    ``reproducibility``, ``paper_pipeline``), the ``section`` heading on it (its text as written; ``""``: the page
    as a whole),
    ``how`` (re-analysis of the paper's data, controlled world, ...) and ``label``, an explicit target
    (``(label)=`` or a figure's ``:name:``) when the section has one."""
    page: str
    section: str
    how: str
    label: str = ""

    @property
    def anchor(self) -> str:
        return self.label or (anchor(self.section) if self.section else "")


@dataclass(frozen=True)
class Part:
    """One part of the paper: ``name`` (``Figure 8``, ``Table 1``, ``Eqs. 5-12``, ``Sec. A.3``), ``kind``,
    ``what`` it shows, the ``places`` that cover it, ``missing`` (what is not covered, and why; ``""`` when
    nothing is) and the ``claims`` (keys of :data:`vtalign.book.claims.CLAIMS`) graded on it."""
    name: str
    kind: str
    what: str
    places: tuple[Place, ...] = ()
    missing: str = ""
    claims: tuple[str, ...] = ()


# the figures `make paper` builds from the paper's own models (issue 23): never run here, where no weights or videos are
_PIPELINE = Place("paper_pipeline", "", "built by `make paper` from the paper's models on VaTeX; not run here (no "
                  "weights or videos); its miniature plan runs the same code in the tests")
_SCALING = ("fig3_frames", "fig3_captions", "eq2_best_form")
_FIG8 = ("fig8_frames", "fig8_captions", "fig8_beats_original", "fig8_saturation", "fig8_eq2_form")

PAPER: tuple[Part, ...] = (
    Part("Figure 1", "figure", "the measurement: frames and captions through two encoders, mutual k-NN",
         (Place("intro", "The measurement, as this library makes it", "redrawn from this library's pipeline",
                "method-overview"),)),
    Part("Figure 2", "figure", "alignment against retrieval accuracy; frame averaging of image models",
         (Place("alignment_vs_retrieval", "Regression of alignment on retrieval accuracy", "re-analysis"),
          Place("alignment_vs_retrieval", "What averaging frames does for image models", "re-analysis"),
          Place("live_downstream", "Figure 2, live: alignment against semantic performance", "controlled world"),
          Place("live_downstream", "Retrieval accuracy: the paper's Figure 2 metric",
                "controlled world; real data where a user has Kinetics / SSv2 videos"),
          _PIPELINE),
         claims=("fig2_strength", "fig2_frame_averaging")),
    Part("Figure 3", "figure", "alignment against the number of frames and captions (VaTeX)",
         (Place("test_time_scaling", "Fitting Eq. 2", "re-analysis"),
          Place("live_scaling", "Fitting Eq. 2 and the alternatives", "controlled world"),
          Place("caption_scaling", "Alignment as captions grow",
                "real data, caption axis only: text-only analogue, graded on VaTeX's captions (PVD's are Figure 8's)")),
         claims=_SCALING),
    Part("Figure 4", "figure", "alignment against six downstream tasks, self-supervised video models",
         (Place("downstream_correlation", "Correlations", "re-analysis"),
          Place("live_downstream", "Figure 4, live: which tasks does alignment track?", "controlled world"),
          _PIPELINE),
         claims=("fig4_downstream",)),
    Part("Figure 5", "figure", "Test of Time alignment at k = 1, 2, 3",
         (Place("test_of_time", "", "re-analysis of the printed bars"),
          Place("live_temporal", "Which neighbour does each side pick?", "controlled world (regenerated)"),
          Place("text_order", "The order share, layer by layer",
                "real data: Sec. 8's text side (bag of words?) on real counterfactuals")),
         claims=("fig5_order", "fig5_bag_of_words")),
    Part("Figure 6", "figure", "VideoComp: alignment with positive and temporally reordered captions",
         (Place("videocomp_negatives", "Do more aligned models drop more?", "re-analysis of the printed bars"),
          Place("live_videocomp", "Real paragraphs: how far does reordering move a text?",
                "real data, text side: real ActivityNet / YouCook2 paragraphs through the offline language models")),
         claims=("fig6_reorder", "fig6_most_aligned")),
    Part("Figure 7", "figure", "all-captions against one-caption alignment over vision models",
         (Place("test_time_scaling", "One caption vs all captions (Figure 7)",
                "re-analysis of other published points"),
          _PIPELINE),
         "Figure 7's own points are not published: the line is compared on Figure 3's and Figure 8's points",
         claims=("fig7_caption_gain",)),
    Part("Figure 8", "figure",
         "PVD: alignment against frames and against synthesised captions, original caption dashed",
         (Place("test_time_scaling", "Figure 8 re-analysed (PVD)", "re-analysis of the digitised panels",
                "figure-8-re-analysed"),
          Place("caption_scaling", "Synthesised captions against the original caption",
                "real data, caption panel only: text-only analogue on PVD's captions")),
         "no controlled world imitates PVD's synthesised captions; per-video scores are not published, so no "
         "interval over videos; the frames panel needs PVD's videos, which are not here", claims=_FIG8),
    Part("Figure 9", "figure", "one PVD video, its original caption and ten synthesised captions",
         missing="a qualitative example with nothing to measure (the prompt that made the captions is quoted in "
                 "Sec. A.3)"),
    Part("Figure 10", "figure", "pairwise alignment between video models and the text model",
         (Place("live_downstream", "Figure 10, live: how the representations align with one another",
                "controlled world"),
          _PIPELINE),
         "the paper's matrix is not published or digitised, and its six extra video models (4DS-e, TRAJAN, WALT, "
         "...) are not offline here, so it is not re-analysed; `make paper` builds it from the models that load"),
    Part("Figure 11", "figure", "alignment of every vision model with every language model, VaTeX, one caption",
         (_PIPELINE,),
         "the matrix is not digitised, so nothing is compared with the paper's; with the weights and videos "
         "`make paper` builds it (never run here)"),
    Part("Figure 12", "figure", "the same for the best vision models with all ten captions",
         (_PIPELINE,),
         "the matrix is not digitised; `make paper` builds it over every vision representation where the paper "
         "shows a subset; Figure 7 re-analyses its one-vs-all comparison from other points"),
    Part("Table 1", "table", "Eq. 2's fitted parameters per vision model, VaTeX and PVD",
         (Place("test_time_scaling", "Side by side with Table 1", "VaTeX rows refitted from Figure 3"),
          Place("test_time_scaling", "Table 1's PVD rows against Figure 8's curves",
                "PVD rows: C and exponents against Figure 8's curves")),
         "PVD's S_inf cannot be refitted: Figure 8 shows slices with unprinted fixed counts, not a grid; rows of "
         "models without a digitised curve (dinov2_large, pe_core_large, videoprism, ...) are shown, not refitted",
         claims=("eq2_best_form", "fig8_eq2_form")),
    Part("Eq. 1", "equations", "the mutual k-NN alignment",
         (Place("glossary", "", "definition"),
          Place("performance", "The layer sweep against the reference algorithm", "implementation checked")),),
    Part("Eq. 2 (= Eqs. 3, 13, 14, 18)", "equations", "the test-time scaling law",
         (Place("test_time_scaling", "Is Eq. 2 the best form?", "re-analysis against four alternatives"),
          Place("test_time_scaling", "Which form fits each curve", "re-analysis on Figure 8's slices"),
          Place("live_scaling", "Fitting Eq. 2 and the alternatives", "controlled world"),
          Place("caption_scaling", "Fitting Eq. 2's caption term and the alternatives",
                "real data: its caption term on text-only curves")),
         claims=("eq2_best_form", "fig8_eq2_form")),
    Part("Eq. 4", "equations", "the Chinchilla loss law, quoted as the analogue of Eq. 2 (Sec. B.3.1)",
         missing="an analogy with training-time scaling, not a claim about the paper's models"),
    Part("Eqs. 5-12", "equations", "additive error terms derived from independent noise, power law from "
                                    "manifold dimension (Sec. B.4.1)",
         (Place("test_time_scaling", "Is Eq. 2 the best form?", "its testable consequence, additivity"),),
         "a derivation from assumptions (idealised representations, independent noise, MSE as a proxy) that "
         "cannot be observed in published scores; only its consequence, Eq. 2's additive form, is tested"),
    Part("Eqs. 15-17", "equations", "the Zipfian feature model (Sec. B.4.2)",
         (Place("test_time_scaling", "Is Eq. 2 the best form?", "its consequence, Eq. 2's form"),),
         "a model of feature weights that no published number measures; only its consequence is tested"),
    Part("Sec. A.1", "appendix", "additional results: Figures 11, 12 and 7",
         (Place("test_time_scaling", "One caption vs all captions (Figure 7)", "re-analysis"),),
         "Figures 11 and 12 are not covered (see their rows)", claims=("fig7_caption_gain",)),
    Part("Sec. A.2", "appendix", "the 121 models",
         (Place("performance", "What the paper's full plan would cost", "their cost projected"),
          Place("reproducibility", "", "the model list's provenance")),
         "the models themselves are not run: the offline encoders here are small stand-ins"),
    Part("Sec. A.3", "appendix", "caption synthesis for PVD and Figure 8",
         (Place("test_time_scaling", "Figure 8 re-analysed (PVD)", "re-analysis", "figure-8-re-analysed"),),
         "the synthesis itself (Gemini 2.5 Pro) is not rerun; Figure 9 is not covered", claims=_FIG8),
    Part("Sec. A.4", "appendix", "Table 1",
         (Place("test_time_scaling", "Side by side with Table 1", "re-analysis"),
          Place("test_time_scaling", "Table 1's PVD rows against Figure 8's curves", "re-analysis")),
         "as Table 1's row", claims=("eq2_best_form", "fig8_eq2_form")),
    Part("Sec. A.5", "appendix", "cross-model video-video alignment (Figure 10)",
         (Place("live_downstream", "Figure 10, live: how the representations align with one another",
                "controlled world"),),
         "as Figure 10's row"),
    Part("Sec. B", "appendix", "theoretical justification of the scaling law (B.1 to B.5)",
         (Place("test_time_scaling", "Is Eq. 2 the best form?", "the form it justifies, against alternatives"),),
         "the arguments are not testable from published scores; their conclusion, Eq. 2's form, is tested"),
)


def anchor(section: str) -> str:
    """The HTML id a section heading gets in the built book (docutils' ``make_id``), or an explicit
    label (``(label)=`` before the heading) as written.

    >>> anchor("Is Eq. 2 the best form?"), anchor("What the paper's full plan would cost")
    ('is-eq-2-the-best-form', 'what-the-paper-s-full-plan-would-cost')
    """
    from docutils.nodes import make_id
    return make_id(section)


_PAGES = {"intro": "Landing page", "glossary": "Glossary", "reproducibility": "Reproducibility",
          "paper_pipeline": "The paper's pipeline, in one command"}  # book pages that are not chapters


def _href(place: Place) -> str:
    page = place.page if place.page in _PAGES else f"chapters/{place.page}"
    return f"{page}.html" + (f"#{place.anchor}" if place.anchor else "")


def chapter_title(name: str) -> str:
    """A chapter's title as its page shows it: the first ``# `` heading of its notebook (the name if none).

    >>> chapter_title("test_of_time")
    'Temporal order on synthetic clips: Test of Time (Figure 5)'
    """
    import json

    from .runner import notebook
    for cell in json.loads(notebook(name).path.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return name


def _title(place: Place) -> str:
    page = _PAGES.get(place.page) or chapter_title(place.page)
    return page + (f" § {place.section}" if place.section else "")


def coverage_table(claims: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per part of :data:`PAPER`: part, kind, what, covered_by (HTML links), how, missing and
    statuses (the statuses of its claims in ``claims``, a ``results/claims.csv`` table, published rows left
    out; empty without one)."""
    rows = []
    for p in PAPER:
        statuses = ""
        if claims is not None and p.claims:
            mine = claims[claims.claim.isin(p.claims) & (claims.evidence != "published")]
            from ..verdicts import EVIDENCE
            statuses = "; ".join(
                f"{e}: " + ", ".join(f"{n} {s}" for s, n in mine[mine.evidence == e].status.value_counts().items())
                for e in EVIDENCE if (mine.evidence == e).any())
        rows.append(dict(part=p.name, kind=p.kind, what=p.what,
                         covered_by="<br>".join(f'<a href="{_href(pl)}">{html.escape(_title(pl))}</a> '
                                                f"({html.escape(pl.how)})" for pl in p.places) or "not covered",
                         missing=p.missing, statuses=statuses))
    return pd.DataFrame(rows)


def write_coverage_page(path=None) -> Path:
    """Write ``book/coverage.md``: the map of :data:`PAPER`, one table per kind of part."""
    from .tables import markdown_cell
    path = Path(path) if path else book_dir() / "coverage.md"
    claims = pd.read_csv(claims_csv(), keep_default_na=False) if claims_csv().is_file() else None
    table = coverage_table(claims)
    covered = table[table.covered_by != "not covered"]
    lines = ["# The paper, part by part", "",
             f"Every figure, Table 1, every equation group and each appendix section of the paper, with the chapter "
             f"and section of this book that covers it, or why none does: {len(covered)} of {len(table)} parts are "
             "covered at least in part. *Re-analysis* works from the paper's published numbers "
             "(`data_manifest/paper/`); *controlled world* measures the method on generated clips with small "
             "offline encoders, never the paper's models. The claims each part carries, and their statuses, are "
             "in the landing page's table ({doc}`intro`)" + ("" if claims is not None else
                                                               "; this build has no claims table yet") + ".", ""]
    heads = {"figure": "Figures", "table": "Table", "equations": "Equations", "appendix": "Appendix sections"}
    for kind, title in heads.items():
        sub = table[table.kind == kind]
        lines += [f"## {title}", "", "| part | what it shows | covered by | not covered, and why | claims graded |",
                  "|---|---|---|---|---|"]
        lines += [f"| **{r.part}** | {markdown_cell(r.what)} | {r.covered_by} | {markdown_cell(r.missing) or '—'} | "
                  f"{markdown_cell(r.statuses) or '—'} |" for r in sub.itertuples()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

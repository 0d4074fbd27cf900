"""What a reader of the book sees: tables as formatted cells, code folded by one rule, and each chapter's
opening line (claims graded there, the stamp of the run shown) with its stale-results warning."""
import json

import numpy as np
import pandas as pd
import pytest

from vtalign.book import presentation, tables
from vtalign.book.claims import CLAIMS, write_claims_page

FORBIDDEN = ("None", "nan", "NaN", "<NA>", "dtype:", "Name:")


def test_missing_values_read_as_a_dash_and_p_values_as_a_reader_expects():
    df = pd.DataFrame({"model": ["a", None, "c"], "alignment": [0.123456789, np.nan, 0.2],
                       "permutation_p": [0.0004, 0.04, pd.NA], "significant": [True, False, None],
                       "n_items": [180.0, 24.0, np.nan], "tasks": [["colours_present"], ("a", "b"), None]})
    shown = tables.formatted(df)
    assert shown.model.tolist() == ["a", tables.MISSING, "c"]
    assert shown.alignment.tolist() == ["0.123", tables.MISSING, "0.200"]
    assert shown.permutation_p.tolist() == ["< 0.001", "0.040", tables.MISSING]
    assert shown.significant.tolist() == ["yes", "no", tables.MISSING]
    assert shown.n_items.tolist() == ["180", "24", tables.MISSING]            # whole numbers stay whole
    assert shown.tasks.tolist() == ["colours_present", "a, b", tables.MISSING]  # no Python list in a cell
    html = tables.to_html(df)
    assert not any(token in html.replace("<NA>", "") for token in FORBIDDEN[:3] + FORBIDDEN[4:])
    assert "&lt;NA&gt;" not in html and "<NA>" not in html


def test_a_chapter_s_own_rounding_is_kept_and_tiny_values_never_read_as_zero():
    assert tables.format_column(pd.Series([0.999999, 0.25]), "mean_cosine").tolist() == ["0.999999", "0.250000"]
    assert tables.format_column(pd.Series([0.1234, 0.5]), "x").tolist() == ["0.1234", "0.5000"]
    assert tables.format_column(pd.Series([1234.56789123, 2.0]), "seconds").tolist() == ["1234.6", "2.0"]
    assert tables.format_column(pd.Series([1e-9 + 0.3, 3e-9]), "x").tolist() == ["0.300", "3.0e-09"]
    assert tables.format_column(pd.Series([np.inf, -np.inf, 1.5]), "x").tolist() == ["∞", "−∞", "1.5"]
    assert tables.format_column(pd.Series([-0.0, 0.5]), "difference").tolist() == ["0.0", "0.5"]  # no "-0.0"
    assert [tables.format_p(p) for p in (0.0, 0.00099, 0.001, 0.5, None)] == ["< 0.001", "< 0.001", "0.001",
                                                                             "0.500", tables.MISSING]
    assert [tables.is_p_column(c) for c in ("p", "p_holm", "permutation_p", "p_value", "pearson_r", "top")] == \
        [True, True, True, True, False, False]


def test_every_table_sits_in_a_sideways_scroller_and_a_series_shows_no_repr():
    series = pd.Series([0.1, 0.2], index=["gemma", "llama"], name="alignment_gemma2_9b_it")
    html = tables.to_html(series)
    assert html.startswith(f'<div class="{tables.SCROLLER_CLASS}" style="overflow-x: auto')
    assert "Name:" not in html and "dtype" not in html and ">gemma<" in html
    wide = pd.DataFrame([[1.5] * 3], columns=pd.MultiIndex.from_tuples([("a", "c_f_this_run"), ("a", "x"),
                                                                        ("b", "y")]))
    html = tables.to_html(wide)
    assert "c_<wbr>f_<wbr>this_<wbr>run" in html  # long snake_case headers may break instead of widening


def test_a_pivot_with_an_unnamed_column_level_shows_no_none():
    """pivot_table(values=[...]) leaves its first column level unnamed: the header names the named levels only
    (a raw None reached the built page once, live_downstream's retrieval table)."""
    df = pd.DataFrame(dict(vision=["a", "a", "b", "b"], task=["x", "y", "x", "y"], score=[1.0, 2, 3, 4],
                           chance=[.1, .2, .3, .4]))
    html = tables.to_html(df.pivot_table(index="vision", columns="task", values=["score", "chance"]))
    assert "None" not in html and "vision ↓ task →" in html and "score · x" in html


def test_install_renders_dataframes_through_the_book_s_rules():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        tables.install()
        data, _ = shell.display_formatter.format(pd.DataFrame({"p": [0.0001], "x": [np.nan]}))
        assert "&lt; 0.001" in data["text/html"] and tables.MISSING in data["text/html"]
        assert "NaN" not in data["text/plain"]
    finally:
        InteractiveShell.clear_instance()


def _cell(outputs, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "outputs": outputs, "source": "x"}


MARKDOWN = {"output_type": "display_data", "data": {"text/markdown": "**found**", "text/plain": "<Markdown>"}}
HTML = {"output_type": "execute_result", "data": {"text/html": "<table/>", "text/plain": "t"}}
IMAGE = {"output_type": "display_data", "data": {"image/svg+xml": "<svg/>", "text/plain": "<Figure>"}}


@pytest.mark.parametrize("cell, expected", [
    (_cell([], tags=["parameters"]), ["parameters"]),                        # shown: readers re-run with it
    (_cell([], tags=["injected-parameters"]), ["injected-parameters"]),
    (_cell([MARKDOWN]), ["remove-input"]),                                  # prose: only the sentence
    (_cell([MARKDOWN, MARKDOWN]), ["remove-input"]),
    (_cell([MARKDOWN, HTML]), ["hide-input"]),                              # a table too: code folded
    (_cell([IMAGE]), ["hide-input"]),
    (_cell([]), ["hide-input"]),
    (_cell([{"output_type": "stream", "name": "stdout", "text": "x"}]), ["hide-input"]),
    (_cell([HTML], tags=["hide-output"]), ["hide-output", "hide-input"]),   # a folded long table keeps its tag
    ({"cell_type": "markdown", "metadata": {}, "source": "# t"}, []),
])
def test_display_rule_for_each_kind_of_cell(cell, expected):
    assert presentation.display_tags(cell) == expected


def _stamp(run_id):
    return dict(name="test_of_time", mode="default", parameters={"ks": [1, 3]}, seconds=3.2, run_id=run_id,
                finished="2026-12-01T10:00:00+00:00", commit="0123456789abcdef", dirty=True)


def test_a_chapter_opens_with_its_statuses_and_warns_when_its_results_are_from_another_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path / "results"))
    monkeypatch.setattr(presentation, "executed_dir", lambda: tmp_path / "chapters")
    monkeypatch.setattr(presentation, "chapter_status_page", lambda name: tmp_path / "status" / f"{name}.md")
    (tmp_path / "status").mkdir()
    (tmp_path / "chapters").mkdir()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Title"]}, _cell([MARKDOWN])],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "chapters" / "test_of_time.ipynb"
    path.write_text(json.dumps(nb))
    presentation.prepare_executed(path, "test_of_time", _stamp("aaaaaaaaaaaa"))
    presentation.prepare_executed(path, "test_of_time", _stamp("aaaaaaaaaaaa"))  # idempotent
    executed = json.loads(path.read_text())
    assert [c["source"] for c in executed["cells"]][:2] == [["# Title"], [presentation.STATUS_INCLUDE.format(
        chapter="test_of_time")]] and len(executed["cells"]) == 3
    assert executed["cells"][2]["metadata"]["tags"] == ["remove-input"]
    results = tmp_path / "results" / "test_of_time"
    results.mkdir(parents=True)
    (results / "run.json").write_text(json.dumps(_stamp("aaaaaaaaaaaa")))
    pd.DataFrame([dict(claim="fig5_order", evidence="re-analysis", status="supported",
                       rule="r", value="v", control="")]).to_csv(results / "verdicts.csv", index=False)
    table = pd.DataFrame([dict(claim="fig5_order", evidence="re-analysis", status="supported",
                               chapter="test_of_time"),
                          dict(claim="fig5_order", evidence="controlled world", status="not testable here",
                               chapter="live_temporal")])
    presentation.write_status_pages(table)
    page = (tmp_path / "status" / "test_of_time.md").read_text()
    assert f'<a href="#{presentation.claim_anchor("fig5_order")}">Figure 5' in page
    assert "<strong>supported</strong>" in page
    assert "`aaaaaaaaaaaa`" in page and "`ks` = `[1, 3]`" in page and "uncommitted changes" in page
    assert "warning" not in page
    # the live chapter did not grade it in a run of its own: no link to an anchor that is not there
    live = (tmp_path / "status" / "live_temporal.md").read_text()
    assert "claim-fig5_order" not in live and "<strong>not testable here</strong>" in live
    (results / "run.json").write_text(json.dumps(_stamp("bbbbbbbbbbbb")))  # `make notebook` ran again
    presentation.write_status_pages(table)
    page = (tmp_path / "status" / "test_of_time.md").read_text()
    assert "```{warning}" in page and "`bbbbbbbbbbbb`" in page and "make html" in page


def test_the_landing_table_links_each_graded_status_to_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    chapter = tmp_path / "test_time_scaling"
    chapter.mkdir()
    pd.DataFrame([dict(claim="fig3_frames", evidence="re-analysis", status="supported",
                       rule="r", value="v", control="")]).to_csv(chapter / "verdicts.csv", index=False)
    text = write_claims_page(tmp_path / "claims.md", tmp_path / "claims.csv").read_text()
    head = text.split("\n\n")[1].splitlines()
    assert head[0] == "| claim | published | re-analysis | real data | controlled world (method check) |"
    assert len(head) == 2 + len(CLAIMS)  # one row per claim
    row = next(line for line in head if "Figure 3.** Alignment grows with the number of frames" in line)
    assert '<a href="chapters/test_time_scaling.html#claim-fig3_frames">**supported**' in row
    # the published cell shows the paper's own short value, linked to the chapter's paper-vs-this-run table
    assert '<a href="chapters/test_time_scaling.html#paper-vs-this-run">every curve rises (Figure 3)</a>' in row
    quoted = next(line for line in head if "Figure 8 (right), Sec. 6.**" in line)
    assert "**as published**" in quoted  # a quoted sentence is too long for a cell: it stays in the details
    assert "chapters/live_scaling.html" not in row  # not run: a status without a link to a missing anchor
    assert text.count(":::{dropdown}") == len(CLAIMS)


def test_files_written_after_the_stamp_are_flagged(tmp_path, monkeypatch):
    """papermill called directly rewrites results/<chapter>/ and leaves the old stamp: the page says so."""
    import os

    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    folder = tmp_path / "test_of_time"
    folder.mkdir()
    (folder / "scores.csv").write_text("a\n1\n")
    (folder / "run.json").write_text(json.dumps(_stamp("aaaaaaaaaaaa")))
    assert presentation.stale_results("test_of_time", _stamp("aaaaaaaaaaaa"), _stamp("aaaaaaaaaaaa")) == ""
    later = (folder / "run.json").stat().st_mtime + 60
    os.utime(folder / "scores.csv", (later, later))
    message = presentation.stale_results("test_of_time", _stamp("aaaaaaaaaaaa"), _stamp("aaaaaaaaaaaa"))
    assert "scores.csv" in message and "make notebook NB=test_of_time" in message


def test_a_built_page_older_than_its_chapter_s_latest_run_is_reported(tmp_path, monkeypatch):
    import os

    from vtalign.book.runner import pages_older_than_their_runs

    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path / "results"))
    (tmp_path / "results" / "test_of_time").mkdir(parents=True)
    stamp = tmp_path / "results" / "test_of_time" / "run.json"
    stamp.write_text(json.dumps(_stamp("aaaaaaaaaaaa")))
    page = tmp_path / "html" / "book" / "chapters" / "test_of_time.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    later = stamp.stat().st_mtime + 60
    os.utime(page, (later, later))
    assert pages_older_than_their_runs(tmp_path / "html") == []
    os.utime(stamp, (later + 60, later + 60))  # `make notebook` ran after `make html`
    assert pages_older_than_their_runs(tmp_path / "html") == ["test_of_time"]

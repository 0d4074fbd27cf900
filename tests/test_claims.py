"""The landing page's claims table is read from the build's results: statuses follow the numbers, and a
chapter that did not run makes its claims 'not testable here' instead of failing or inventing a value."""
import pandas as pd
import pytest

from vtalign.book import claims


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("VTALIGN_RESULTS_ROOT", str(tmp_path))
    return tmp_path


def _write(root, chapter, stem, rows):
    (root / chapter).mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(root / chapter / f"{stem}.csv", index=False)


def _status(figure, statement_starts=""):
    table = claims.claims_table()
    row = table[(table.figure == figure) & table.claim.str.startswith(statement_starts)].iloc[0]
    return row.status, row


def test_nothing_run_means_not_testable(results):
    table = claims.claims_table()
    assert len(table) == len(claims.CLAIMS) and (table.status == "not testable here").all()
    assert table.live.str.startswith("not run").all()


def test_figure2_status_follows_the_fits(results):
    fits = lambda r, p: [dict(text=t, pearson_r=r, permutation_p=p) for t in ("a", "b")]
    _write(results, "live_downstream", "figure2_fits", fits(0.8, 0.001))
    assert _status("Figure 2", "Alignment")[0] == "reproduced"
    _write(results, "live_downstream", "figure2_fits", fits(-0.8, 0.001))
    assert _status("Figure 2", "Alignment")[0] == "contradicted"
    _write(results, "live_downstream", "figure2_fits", fits(0.2, 0.4))
    status, row = _status("Figure 2", "Alignment")
    assert status == "partly" and "r = 0.20 to 0.20" in row.live


def test_figure6_control_outside_its_null_makes_the_claim_untestable(results):
    rows = [dict(vision="m | mean:16", text="t", difference=0.01, p_value=0.01, within_null=False),
            dict(vision="m | segments:4", text="t", difference=0.02, p_value=0.01, within_null=False)]
    _write(results, "live_videocomp", "negatives", rows)
    assert _status("Figure 6")[0] == "not testable here"
    rows[0]["within_null"] = True
    _write(results, "live_videocomp", "negatives", rows)
    assert _status("Figure 6")[0] == "reproduced"


def test_claims_page_links_both_chapters_of_every_claim(results, tmp_path):
    text = claims.write_claims_page(tmp_path / "claims.md").read_text()
    for c in claims.CLAIMS:
        for chapter in c.chapters:
            assert f"<chapters/{chapter}>" in text
    assert text.count("\n| **") == len(claims.CLAIMS)


def _grid(scores):
    """A 2 x 2 live-scaling grid: frames (1, 4) x captions (1, 5), scores row-major."""
    cells = [(1, 1), (1, 5), (4, 1), (4, 5)]
    return [dict(model="v x t", n_frames=f, n_captions=c, score=s) for (f, c), s in zip(cells, scores)]


def test_figure3_status_counts_rising_rows_and_columns_of_the_grid(results):
    _write(results, "live_scaling", "grid", _grid([0.1, 0.2, 0.15, 0.3]))
    status, row = _status("Figure 3", "Alignment")
    assert status == "reproduced" and "2 of 2 columns" in row.live and "2 of 2 rows" in row.live
    _write(results, "live_scaling", "grid", _grid([0.1, 0.2, 0.15, 0.18]))  # 5 captions: more frames lower it
    status, row = _status("Figure 3", "Alignment")
    assert status == "partly" and "1 of 2 columns" in row.live and "2 of 2 rows" in row.live
    _write(results, "live_scaling", "grid", _grid([0.3, 0.2, 0.1, 0.05]))
    assert _status("Figure 3", "Alignment")[0] == "not reproduced"


def test_figure5_status_counts_near_perfect_pairs_from_the_scores(results):
    scores = [dict(mode="video", k=3, alignment=a) for a in (0.95, 0.92, 0.5)] + [dict(mode="video", k=1, alignment=0.1)]
    _write(results, "live_temporal", "scores", scores)
    comparison = [dict(quantity="video (frames averaged): same-order share, aligned layer", this_run=0.34)]
    _write(results, "live_temporal", "paper_vs_this_run", comparison)
    status, row = _status("Figure 5")
    assert status == "reproduced" and row.live.startswith("2 of 3 pairs")
    _write(results, "live_temporal", "scores", scores[2:])
    status, row = _status("Figure 5")
    assert status == "partly" and row.live.startswith("0 of 1 pairs")

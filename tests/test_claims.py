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

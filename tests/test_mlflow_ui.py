"""The MLflow UI in a real browser: `mlflow server` on a free loopback port over a SQLite store made
by a small training (the session's tiny model, a private copy of its store), opened in headless Debian
Chromium driven by Playwright. Asserts that the experiment opens on its training runs (not MLflow
3's GenAI overview), that the parent run and its nested runs, their metrics, the registered model
and its version are shown with their descriptions and tags, and that the model search finds it by
tag; saves screenshots (tmp dir, and reports/ui-screenshot.png when reports/ exists). The server is
always stopped. The registry's descriptions and tags are also checked through MlflowClient.

Needs /usr/bin/chromium and the playwright package: scripts/install_browser.sh installs both
(`make test` runs it). Playwright is pointed at the system Chromium; `playwright install` is never
needed.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from synthetic import free_port

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NETWORKS = ("redshift", "stellarity", "spectral_type", "stellar_mass")
MODEL = "galaxy-ensemble"


def stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (its workers too): TERM, then KILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def store(tmp_path_factory, model_store):
    """The session's tiny model: a private copy of its store (the server may write to it)."""
    return model_store(tmp_path_factory.mktemp("ui"))


@pytest.fixture
def server(store):
    port = free_port()
    log = open(store / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{store}/mlflow.db", "--default-artifact-root", str(store / "mlruns"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=store, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=3)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("mlflow server did not start:\n" + (store / "server.log").read_text()[-3000:])
                time.sleep(1)
        yield base
    finally:
        stop(proc)
        log.close()


def wait_for_tag(page, key: str, value: str) -> None:
    """A row of the page's tags table shows `key` with `value` (not just the text somewhere)."""
    page.locator("tr, [role=row]", has_text=key).filter(has_text=value).first.wait_for()


def client_of(store):
    from mlflow import MlflowClient

    uri = f"sqlite:///{store}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_registry_describes_the_model_and_its_versions(store, trained_model):
    """What training wrote to the registry, read back through the client: the experiment's kind,
    the model's and version 1's descriptions and tags, equal to what the training run logged, and
    the searches a reader would type."""
    from galaxy_spark.model.tracking import EXPERIMENT_KIND_TAG, TRAINING_KIND

    client = client_of(store)
    run = client.get_run(trained_model.run_id).data
    exp = client.get_experiment_by_name("galaxy-properties")
    assert exp.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND == "custom_model_development"
    model = client.get_registered_model(MODEL)
    assert f"models:/{MODEL}@champion" in model.description and "z_phot" in model.description
    assert model.tags == {"survey": "alhambra", "presets": "default", "label_sources": "catalogue"}
    mv = client.get_model_version(MODEL, "1")
    for k in ("survey", "preset", "label_source", "selection_labels", "catalogue_fingerprint", "git_commit"):
        assert mv.tags[k] == run.params[k], k
    assert mv.tags["training_run"] == trained_model.run_id
    for k in ("redshift_sigma_nmad", "redshift_outlier_frac", "stellarity_roc_auc", "stellar_mass_nmad"):
        assert float(mv.tags[f"test_catalogue_{k}"]) == pytest.approx(run.metrics[f"test_catalogue_{k}"], rel=1e-3), k
    assert run.params["catalogue_fingerprint"] in mv.description and "redshift σ_NMAD" in mv.description
    assert [m.name for m in client.search_registered_models("tags.survey = 'alhambra'")] == [MODEL]
    assert client.search_registered_models("tags.survey = 'elsewhere'") == []
    found = client.search_model_versions(f"name = '{MODEL}' and tags.preset = 'default'")
    assert [str(v.version) for v in found] == ["1"]


def test_ui_shows_runs_metrics_and_registered_model(store, server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="run scripts/install_browser.sh")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing: run scripts/install_browser.sh")
    from galaxy_spark.model.tracking import experiment_url

    client = client_of(store)
    exp = client.get_experiment_by_name("galaxy-properties")
    parent = next(r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags)
    parent_name = parent.data.tags["mlflow.runName"]
    mv = client.get_model_version(MODEL, "1")
    shots = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # a new page is a new browser context: no stored "GenAI | Model training" choice
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60000)
            # 1. the experiment as `make ui` names it lands on its runs (MLflow 3's GenAI overview
            # would show neither the runs tab nor the run): the parent, its nested runs once expanded
            page.goto(experiment_url(server, exp.experiment_id), wait_until="domcontentloaded")
            row = page.locator("[role=row]", has_text=parent_name).first
            row.wait_for()
            assert "/overview" not in page.url and "/traces" not in page.url, page.url
            row.locator("button").first.click()  # the expand (+) control of the parent row
            for name in NETWORKS:
                page.get_by_text(name, exact=True).first.wait_for()
            shots.append(tmp_path / "ui-runs.png")
            page.screenshot(path=str(shots[-1]))
            # 2. the parent run: its metrics and params
            page.goto(f"{server}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}",
                      wait_until="domcontentloaded")
            for metric in ("test_catalogue_redshift_sigma_nmad", "sel_redshift_sigma_nmad"):
                page.get_by_text(metric).first.wait_for()
            shots.append(tmp_path / "ui-run.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            # 3. the model search by tag finds the registered model, with its champion alias
            search = urllib.parse.quote("tags.survey = 'alhambra'")
            page.goto(f"{server}/#/models?searchInput={search}", wait_until="domcontentloaded")
            page.get_by_text(MODEL).first.wait_for()
            page.get_by_text("champion").first.wait_for()
            shots.append(tmp_path / "ui-models.png")
            page.screenshot(path=str(shots[-1]))
            # 4. the model's page: its description and tags
            page.goto(f"{server}/#/models/{MODEL}", wait_until="domcontentloaded")
            page.get_by_text("galaxy_spark ensemble: one network per head").first.wait_for()
            for key, value in client.get_registered_model(MODEL).tags.items():
                wait_for_tag(page, key, value)
            shots.append(tmp_path / "ui-model.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            # 5. version 1's page: its description (catalogue fingerprint, test metrics) and tags
            page.goto(f"{server}/#/models/{MODEL}/versions/1", wait_until="domcontentloaded")
            page.get_by_text("redshift σ_NMAD", exact=False).first.wait_for()
            for key in ("survey", "preset", "catalogue_fingerprint", "test_catalogue_redshift_sigma_nmad"):
                wait_for_tag(page, key, mv.tags[key])
            shots.append(tmp_path / "ui-version.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
        finally:
            browser.close()
    assert all(s.stat().st_size > 10_000 for s in shots)
    reports = REPO / "reports"
    if reports.is_dir():
        shutil.copy(shots[0], reports / "ui-screenshot.png")

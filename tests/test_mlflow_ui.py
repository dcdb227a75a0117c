"""The MLflow UI in a real browser: `mlflow server` on a free loopback port over a SQLite store made
by a small training (the session's tiny model, a private copy of its store), opened in headless Debian Chromium driven by Playwright. Asserts that the
parent run and its nested runs, their metrics and the registered model are shown; saves screenshots
(tmp dir, and reports/ui-screenshot.png when reports/ exists). The server is always stopped.

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
import urllib.request
from pathlib import Path

import pytest
from synthetic import free_port

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NETWORKS = ("redshift", "stellarity", "spectral_type", "stellar_mass")


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


def test_ui_shows_runs_metrics_and_registered_model(store, server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="run scripts/install_browser.sh")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing: run scripts/install_browser.sh")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    exp = client.get_experiment_by_name("galaxy-properties")
    parent = next(r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags)
    parent_name = parent.data.tags["mlflow.runName"]
    shots = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60000)
            # 1. the experiment's runs: the parent, then its nested runs once expanded
            page.goto(f"{server}/#/experiments/{exp.experiment_id}/runs", wait_until="domcontentloaded")
            page.get_by_text(parent_name, exact=True).first.wait_for()
            row = page.locator("[role=row]", has_text=parent_name).first
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
            # 3. the registered model, with its champion alias
            page.goto(f"{server}/#/models", wait_until="domcontentloaded")
            page.get_by_text("galaxy-ensemble").first.wait_for()
            page.get_by_text("champion").first.wait_for()
            shots.append(tmp_path / "ui-models.png")
            page.screenshot(path=str(shots[-1]))
        finally:
            browser.close()
    assert all(s.stat().st_size > 10_000 for s in shots)
    reports = REPO / "reports"
    if reports.is_dir():
        shutil.copy(shots[0], reports / "ui-screenshot.png")

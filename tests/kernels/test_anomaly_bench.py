"""`cityhealth bench kernels` machinery on a tiny anomaly run (no timing assertions)."""

from __future__ import annotations

from cityhealth.bench.kernels import jit_cache_check, run_benchmark


def test_anomaly_cases_report_every_figure() -> None:
    report = run_benchmark(
        samples=3000,
        devices=30,
        naive_samples=300,
        repeat=1,
        only=["anomaly", "anomaly_parallel"],
        jit_check=False,
    )
    serial, parallel = report.results
    assert serial.available and parallel.available, (serial.note, parallel.note)
    assert serial.name == "anomaly.AnomalyScorer.update"
    assert "parallel=True" in parallel.name
    for r in (serial, parallel):
        assert r.values == 3000 and 0 < r.naive_values <= 3000
        assert r.kernel_rate > 0 and r.naive_rate > 0 and r.copy_rate > 0
        assert r.ratio_vs_naive > 0 and r.ratio_vs_copy > 0
    # CPU time of the calling thread only means something for the single-threaded loop
    assert serial.kernel_cpu_rate is not None and serial.ratio_vs_naive_cpu is not None
    assert parallel.kernel_cpu_rate is None
    assert report.load_avg_1m is not None


def test_jit_cache_check_times_every_public_kernel_in_a_fresh_process() -> None:
    check = jit_cache_check(runs=1)
    assert "error" not in check, check
    (run,) = check["runs"]
    missing = " ".join(run["missing"])
    for module in ("heat", "aqi", "news2", "anomaly"):  # fall belongs to another change
        assert module not in missing
        assert f"import {module}" in run["steps_s"] and f"call {module}" in run["steps_s"]
    assert run["first_call_s"] == run["steps_s"]["call heat"]
    assert 0 < run["first_call_s"] <= run["kernels_s"] < run["process_wall_s"]

"""What a run tells an operator about its health: the WARN check on ``snapshot_run`` and the login breakers,
against the simulator's real HTTP server with its faults and its login refusals."""

from __future__ import annotations

import dagster as dg

from tests.assets.api_env import point_at_simulator, run_snapshot_job

CHECK = "snapshot_run_without_errors"


def run_health(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == CHECK]
    return evaluation


def materialization_metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def test_a_clean_run_passes_the_run_health_check(simulator, monkeypatch, tmp_path):
    point_at_simulator(monkeypatch, tmp_path, simulator, simulator.logins(2))
    with dg.DagsterInstance.ephemeral() as instance:
        evaluation = run_health(run_snapshot_job(instance))
    assert evaluation.passed
    assert evaluation.metadata["status"].value == "ok"
    assert evaluation.metadata["errors"].value == 0
    assert evaluation.metadata["dead_letters_by_endpoint"].value == {}


def test_a_truncated_available_agents_body_fails_the_check_as_a_warning_naming_the_endpoint(
    simulator, monkeypatch, tmp_path
):
    point_at_simulator(monkeypatch, tmp_path, simulator, simulator.logins(2))
    simulator.faults.set(endpoint="availableAgents", kind="truncate", probability=1.0)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_snapshot_job(instance)
    assert result.success, "a dead-lettered payload makes the run partial, not failed"
    evaluation = run_health(result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["status"].value == "partial"
    assert evaluation.metadata["errors"].value == 1
    assert evaluation.metadata["dead_letters_by_endpoint"].value == {"availableAgents": 1}
    assert "availableAgents" in evaluation.metadata["first_error"].value
    other_checks = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name != CHECK]
    assert all(e.passed for e in other_checks), "only the run-health check speaks of the dead letter"


def test_a_wrong_password_opens_a_breaker_that_session_metadata_shows_masked(simulator, monkeypatch, tmp_path):
    (good, good_password), (blocked, _) = simulator.logins(2)
    point_at_simulator(monkeypatch, tmp_path, simulator, [(good, good_password), (blocked, "wrong-password")])
    with dg.DagsterInstance.ephemeral() as instance:
        first = run_snapshot_job(instance)
        second = run_snapshot_job(instance)
    assert simulator.stats.logins(blocked) == 1, "the breaker kept the second run from trying the login again"
    for result in (first, second):
        metadata = materialization_metadata(result, "session_availability_snapshot")
        assert metadata["open_login_breakers"] == 1
        assert metadata["stale_login_breakers"] == 0
        (entry,) = metadata["blocked_logins"]
        assert entry["http_status"] == 401
        assert entry["login"] == blocked[:2] + "*" * (len(blocked) - 4) + blocked[-2:]
        assert "--reset-breaker USERNAME" in metadata["reset_breaker_with"]
        assert "wrong-password" not in repr(metadata)
        assert metadata["dagster/row_count"] == 1, "the healthy login still reports its availability"
    health = run_health(second)
    assert not health.passed and health.severity == dg.AssetCheckSeverity.WARN
    assert "login breaker open" in health.metadata["first_error"].value


def test_a_breaker_of_a_corrected_password_is_stale_and_blocks_nothing(simulator, monkeypatch, tmp_path):
    ((username, password),) = simulator.logins(1)
    point_at_simulator(monkeypatch, tmp_path, simulator, [(username, "wrong-password")])
    with dg.DagsterInstance.ephemeral() as instance:
        run_snapshot_job(instance)
        point_at_simulator(monkeypatch, tmp_path, simulator, [(username, password)])
        corrected = run_snapshot_job(instance)
    metadata = materialization_metadata(corrected, "session_availability_snapshot")
    assert metadata["open_login_breakers"] == 0
    assert metadata["stale_login_breakers"] == 1
    assert "blocked_logins" not in metadata
    assert run_health(corrected).passed

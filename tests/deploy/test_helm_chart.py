"""The Helm chart renders, lints, validates against Kubernetes schemas and keeps its promises."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from .chart import CRD_KINDS, Rendered, container, env_of, lint, render
from .paths import CHART_DIR, CHART_RULES_PATH

PAYER_OVERRIDE = (
    "payer_id: ACME-HEALTH\n"
    "extends: commercial-default\n"
    "settings:\n"
    "  requires_prior_auth: true\n"
    "  max_days_supply: 30\n"
)

# Every optional feature on, with the credentials an SASL_SSL + mTLS cluster needs.
ALL_TOGGLES: dict[str, Any] = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "keda": {"enabled": True},
    "podDisruptionBudget": {"enabled": True},
    "serviceAccount": {"create": True},
    "payerOverrides": {"acme-health.yaml": PAYER_OVERRIDE},
    "kafka": {
        "partitions": 24,
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "kafka-credentials"},
        "tls": {"existingSecret": "kafka-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
        "options": {"session_timeout_ms": 30000, "max_poll_records": 500},
    },
    "schemaRegistry": {"url": "https://schema-registry:8081", "existingSecret": "registry-credentials"},
    "worker": {"ndcCrosswalk": {"configMap": "ndc-crosswalk-2026q3"}},
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
}

# The worker's configuration surface: the chart must not invent variables it does not read.
WORKER_ENV = frozenset(
    {
        "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_GROUP_ID", "TOPIC_CLAIMS", "TOPIC_PRESCRIPTIONS",
        "TOPIC_LAB_RESULTS", "TOPIC_DECISIONS", "TOPIC_DEAD_LETTER", "METRICS_PORT",
        "PAYER_CONFIG_DIR", "CONTEXT_SCOPE", "NDC_CROSSWALK_FILE", "LOG_LEVEL", "KAFKA_OPTIONS",
        "MAX_CLAIM_LINES", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE",
        "KAFKA_SSL_KEYFILE", "SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_USERNAME",
        "SCHEMA_REGISTRY_PASSWORD", "SCHEMA_REGISTRY_PASSWORD_FILE",
    }
)  # fmt: skip

KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render()


@pytest.fixture(scope="module")
def all_on() -> Rendered:
    return render(ALL_TOGGLES)


def _value_of(env: dict[str, dict[str, Any]], name: str) -> str:
    value: str = env[name]["value"]
    return value


# --- Helm's own checks -------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, ALL_TOGGLES], ids=["defaults", "all-toggles"])
def test_chart_lints_without_warnings(values: dict[str, Any] | None) -> None:
    report = lint(values)
    assert report["errors"] == []
    # Severity 1 is advice ("icon is recommended"); 2 and 3 are warnings and errors.
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


def test_lint_reports_values_that_break_the_schema() -> None:
    report = lint({"kafka": {"partitions": 0}})
    assert any("partitions" in error for error in report["errors"])


# --- Kubernetes schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", [None, ALL_TOGGLES], ids=["defaults", "all-toggles"])
def test_manifests_validate_strictly_against_kubernetes(values: dict[str, Any] | None, version: str) -> None:
    rendered = render(values)
    validated = []
    for manifest in rendered.manifests:
        if manifest["kind"] in CRD_KINDS:
            continue  # no offline schema for CRDs; their fields are asserted below
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{manifest['kind']} {manifest['metadata']['name']}: {path}: {error.message}")
        validated.append(manifest["kind"])
    assert "Deployment" in validated


def test_strict_validation_rejects_a_misspelt_field(default: Rendered) -> None:
    # Proves the validation above would catch a typo in a template.
    deployment = copy.deepcopy(default.one("Deployment"))
    container(deployment)["livenesProbe"] = {"httpGet": {"path": "/livez", "port": "metrics"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# --- What gets rendered ------------------------------------------------------------------------


def test_defaults_render_the_core_objects_only(default: Rendered) -> None:
    assert default.kinds == {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}


def test_all_toggles_render_every_optional_object_and_no_hpa(all_on: Rendered) -> None:
    assert all_on.kinds == {
        "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap",
        "ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication",
    }  # fmt: skip
    # KEDA creates and owns the HPA; a chart-made one would fight it.
    assert "HorizontalPodAutoscaler" not in all_on.kinds


# --- Pod security ------------------------------------------------------------------------------


@pytest.mark.parametrize("rendered_name", ["default", "all_on"])
def test_pod_runs_restricted(rendered_name: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(rendered_name)
    deployment = rendered.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    worker = container(deployment)
    security = worker["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    # The read-only root needs a writable /tmp, and it must be an emptyDir (nothing persists).
    mounts = {mount["mountPath"]: mount["name"] for mount in worker["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Only the /tmp mount is writable.
    assert all(mount.get("readOnly") for mount in worker["volumeMounts"] if mount["mountPath"] != "/tmp")


def test_image_entrypoint_runs_the_worker(default: Rendered) -> None:
    worker = container(default.one("Deployment"))
    assert "command" not in worker  # the image's ENTRYPOINT ["j7507-worker"] stays in charge
    assert worker["args"] == ["run"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert worker["resources"]["requests"].keys() >= {"cpu", "memory"}
    assert "memory" in worker["resources"]["limits"]


def test_probes_use_the_health_endpoints_and_startup_allows_a_slow_restore(default: Rendered) -> None:
    worker = container(default.one("Deployment"))
    assert worker["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert worker["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    startup = worker["startupProbe"]
    liveness = worker["livenessProbe"]
    # Context restore from the compacted topics may take minutes; liveness would give up sooner.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert startup["periodSeconds"] * startup["failureThreshold"] > (
        liveness["periodSeconds"] * liveness["failureThreshold"]
    )


def test_grace_period_covers_the_shutdown(default: Rendered) -> None:
    # The worker finishes its batch, commits and exits within 10 s of SIGTERM.
    pod = default.one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 10


# --- Configuration -----------------------------------------------------------------------------


def test_default_env_carries_the_contract_topics(default: Rendered) -> None:
    env = env_of(default.one("Deployment"))
    assert set(env) <= WORKER_ENV
    expected = {
        "KAFKA_GROUP_ID": "j7507-worker",
        "TOPIC_CLAIMS": "ehr.claims.v1",
        "TOPIC_PRESCRIPTIONS": "ehr.prescriptions.v1",
        "TOPIC_LAB_RESULTS": "ehr.lab-results.v1",
        "TOPIC_DECISIONS": "billing.j7507.decisions.v1",
        "TOPIC_DEAD_LETTER": "billing.j7507.dead-letter.v1",
        "METRICS_PORT": "9400",
        "CONTEXT_SCOPE": "partition",
        "MAX_CLAIM_LINES": "50",
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }
    assert {name: _value_of(env, name) for name in expected} == expected
    assert _value_of(env, "KAFKA_BOOTSTRAP_SERVERS")
    # Optional features stay off by default.
    assert not {"PAYER_CONFIG_DIR", "NDC_CROSSWALK_FILE", "KAFKA_OPTIONS", "SCHEMA_REGISTRY_URL"} & set(env)


def test_all_toggles_env_uses_only_worker_variables(all_on: Rendered) -> None:
    env = env_of(all_on.one("Deployment"))
    assert set(env) - {"TZ"} <= WORKER_ENV
    assert _value_of(env, "KAFKA_OPTIONS") == "max_poll_records=500,session_timeout_ms=30000"
    assert _value_of(env, "KAFKA_SASL_MECHANISM") == "SCRAM-SHA-512"
    assert _value_of(env, "SCHEMA_REGISTRY_URL") == "https://schema-registry:8081"
    assert _value_of(env, "TZ") == "UTC"


def test_payer_overrides_are_mounted_at_payer_config_dir(all_on: Rendered) -> None:
    config_map = all_on.one("ConfigMap")
    assert yaml.safe_load(config_map["data"]["acme-health.yaml"]) == yaml.safe_load(PAYER_OVERRIDE)
    deployment = all_on.one("Deployment")
    payer_dir = _value_of(env_of(deployment), "PAYER_CONFIG_DIR")
    pod = deployment["spec"]["template"]["spec"]
    mount = next(mount for mount in container(deployment)["volumeMounts"] if mount["mountPath"] == payer_dir)
    volume = next(volume for volume in pod["volumes"] if volume["name"] == mount["name"])
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]


def test_changing_a_payer_override_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = render(values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/payer-config"]
        return value

    changed = {"payerOverrides": {"acme-health.yaml": PAYER_OVERRIDE.replace("30", "90")}}
    assert checksum({"payerOverrides": {"acme-health.yaml": PAYER_OVERRIDE}}) != checksum(changed)


def test_ndc_crosswalk_file_points_into_its_mount(all_on: Rendered) -> None:
    deployment = all_on.one("Deployment")
    path = _value_of(env_of(deployment), "NDC_CROSSWALK_FILE")
    mounts = [m for m in container(deployment)["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert len(mounts) == 1


# --- Credentials -------------------------------------------------------------------------------


def test_credentials_come_from_existing_secrets_only(all_on: Rendered) -> None:
    assert "Secret" not in all_on.kinds
    deployment = all_on.one("Deployment")
    env = env_of(deployment)
    for name in ("KAFKA_SASL_USERNAME", "SCHEMA_REGISTRY_USERNAME"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] in {"kafka-credentials", "registry-credentials"}
    pod = deployment["spec"]["template"]["spec"]
    secret_volumes = {volume["name"]: volume["secret"] for volume in pod["volumes"] if "secret" in volume}
    assert {volume["secretName"] for volume in secret_volumes.values()} == {
        "kafka-credentials",
        "kafka-tls",
        "registry-credentials",
    }
    # Passwords are files from the Secrets (the worker reads NAME_FILE), never env values.
    for name, secret in (
        ("KAFKA_SASL_PASSWORD", "kafka-credentials"),
        ("SCHEMA_REGISTRY_PASSWORD", "registry-credentials"),
    ):
        assert name not in env
        password_file = _value_of(env, name + "_FILE")
        mount = next(m for m in container(deployment)["volumeMounts"] if password_file.startswith(m["mountPath"] + "/"))
        volume = secret_volumes[mount["name"]]
        assert volume["secretName"] == secret
        assert volume["items"] == [{"key": "password", "path": password_file.rsplit("/", 1)[1]}]
    for name in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
        assert _value_of(env, name).startswith("/etc/j7507/kafka-tls/")


@pytest.mark.parametrize(
    "values",
    [
        {"kafka": {"sasl": {"password": "hunter2"}}},
        {"schemaRegistry": {"password": "hunter2"}},
        {"kafka": {"options": {"sasl_plain_password": "hunter2"}}},
    ],
    ids=["kafka.sasl.password", "schemaRegistry.password", "kafka.options.sasl_plain_password"],
)
def test_values_refuse_inline_credentials(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)


def test_sasl_without_an_existing_secret_fails_the_render() -> None:
    values = {"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"mechanism": "PLAIN"}}}
    with pytest.raises(helm.HelmRenderError, match="existingSecret"):
        render(values)


def test_more_replicas_than_partitions_fails_the_render() -> None:
    with pytest.raises(helm.HelmRenderError, match="partitions"):
        render({"replicaCount": 13, "kafka": {"partitions": 12}})


# --- Disruption, scaling, monitoring -----------------------------------------------------------


def test_pdb_lets_one_consumer_go_at_a_time(default: Rendered) -> None:
    pdb = default.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = default.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_keda_scales_the_deployment_on_claim_lag(all_on: Rendered) -> None:
    scaled = all_on.one("ScaledObject")
    deployment = all_on.one("Deployment")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] == 1
    assert scaled["spec"]["maxReplicaCount"] == ALL_TOGGLES["kafka"]["partitions"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    env = env_of(deployment)
    assert metadata["topic"] == _value_of(env, "TOPIC_CLAIMS")
    assert metadata["consumerGroup"] == _value_of(env, "KAFKA_GROUP_ID")
    assert metadata["bootstrapServers"] == _value_of(env, "KAFKA_BOOTSTRAP_SERVERS")
    assert metadata["excludePersistentLag"] == "true"
    assert metadata["sasl"] == "scram_sha512"
    assert metadata["tls"] == "enable"
    # KEDA owns the replica count while it is on.
    assert "replicas" not in deployment["spec"]


def test_keda_reads_lag_with_the_workers_secrets(all_on: Rendered) -> None:
    auth = all_on.one("TriggerAuthentication")
    [trigger] = all_on.one("ScaledObject")["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("kafka-credentials", "username"),
        "password": ("kafka-credentials", "password"),
        "ca": ("kafka-tls", "ca.crt"),
        "cert": ("kafka-tls", "tls.crt"),
        "key": ("kafka-tls", "tls.key"),
    }


def test_without_keda_the_deployment_sets_its_replicas(default: Rendered) -> None:
    assert default.one("Deployment")["spec"]["replicas"] == 2


def test_service_monitor_scrapes_the_metrics_port(all_on: Rendered) -> None:
    monitor = all_on.one("ServiceMonitor")
    service = all_on.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    [port] = service["spec"]["ports"]
    assert (port["name"], port["targetPort"]) == ("metrics", "metrics")
    pod_labels = all_on.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_prometheus_rule_carries_the_rules_file(all_on: Rendered) -> None:
    rule = all_on.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(CHART_RULES_PATH.read_text(encoding="utf-8"))


def test_notes_warn_about_plaintext_kafka(default: Rendered, all_on: Rendered) -> None:
    assert "PLAINTEXT" in default.notes
    assert "PLAINTEXT" not in all_on.notes

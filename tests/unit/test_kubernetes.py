"""deploy/kubernetes/: every manifest valid for the three newest Kubernetes versions that
kubernetes-validate knows (no cluster can run here: docs/deploy.md), the StatefulSet's shards
covering a target list exactly once at 1, 3 and 8 replicas, and the alert rules the same as
deploy/stamp-alerts.yml's (which promtool tests)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate.utils as kv
import pytest
import yaml

from stamp_suite.commands.monitor import auto_shard
from stamp_suite.config import ConfigError
from stamp_suite.monitor.targets import shard_of

DEPLOY = Path(__file__).parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
# Prometheus Operator kinds: custom resources, whose schemas kubernetes-validate does not carry
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}


def documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def newest_versions(n: int = 3) -> list[str]:
    versions = sorted(set(kv.all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))
    return versions[-n:]


@pytest.mark.parametrize("version", newest_versions())
def test_every_manifest_is_valid_for_the_newest_kubernetes_versions(version):
    checked = 0
    for name, doc in documents():
        if doc["kind"] in OPERATOR_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["spec"], name
            continue
        kv.validate(doc, version, strict=True)  # raises ValidationError naming the field
        checked += 1
    assert checked >= 5


def test_the_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS if p.name != "kustomization.yaml")


def _statefulset() -> dict:
    (doc,) = [d for _, d in documents() if d["kind"] == "StatefulSet"]
    return doc


def test_the_shard_count_is_the_replica_count_and_the_ordinal_comes_from_the_pod():
    sts = _statefulset()
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STAMP_SHARDS"]["value"] == str(sts["spec"]["replicas"])
    assert env["STAMP_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"
    assert container["args"][:1] == ["monitor"] and "auto" in container["args"] and "--watch" in container["args"]


@pytest.mark.parametrize("replicas", [1, 3, 8])
def test_the_rendered_replicas_cover_every_target_exactly_once(replicas):
    """The StatefulSet made with this replica count: its pods (names NAME-ORDINAL, the
    pod-index label), each --shard auto, share a list of targets without overlap or gap."""
    sts = _statefulset()
    name = sts["metadata"]["name"]
    targets = [f"target-{i}" for i in range(2000)]
    taken: dict[str, int] = {}
    for ordinal in range(replicas):
        for env in ({"STAMP_SHARDS": str(replicas), "STAMP_SHARD_INDEX": str(ordinal)},
                    {"STAMP_SHARDS": str(replicas)}):  # before 1.28: the ordinal from the pod's name
            assert auto_shard(env, f"{name}-{ordinal}") == (ordinal + 1, replicas)
        k, n = auto_shard({"STAMP_SHARDS": str(replicas)}, f"{name}-{ordinal}")
        for t in targets:
            if shard_of(t, n) == k:
                assert t not in taken, f"{t} in shards {taken[t]} and {k}"
                taken[t] = k
    assert len(taken) == len(targets)
    if replicas > 1:
        assert len(set(taken.values())) == replicas  # every shard has some


@pytest.mark.parametrize("env, host, needle", [
    ({}, "stamp-monitor-0", "STAMP_SHARDS is not set"),
    ({"STAMP_SHARDS": "x"}, "stamp-monitor-0", "not 'x'"),
    ({"STAMP_SHARDS": "3"}, "laptop", "does not end in -ORDINAL"),
    ({"STAMP_SHARDS": "3", "STAMP_SHARD_INDEX": "abc"}, "stamp-monitor-0", "the pod's ordinal .0, 1, ...., not 'abc'"),
    ({"STAMP_SHARDS": "3"}, "stamp-monitor-3", "ordinal 3 is not below STAMP_SHARDS 3")])
def test_auto_shard_says_what_is_missing(env, host, needle):
    with pytest.raises(ConfigError, match=needle):
        auto_shard(env, host)


def test_the_operator_rules_are_the_tested_alert_rules():
    (rule,) = [d for _, d in documents() if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((DEPLOY / "stamp-alerts.yml").read_text())


def test_the_reflector_holds_port_862_as_a_user_that_is_not_root_with_one_capability():
    (ds,) = [d for _, d in documents() if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["hostNetwork"] and pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    # the image's interpreter carries that file capability: every container of it keeps it bounded
    (monitor,) = _statefulset()["spec"]["template"]["spec"]["containers"]
    assert monitor["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert {"containerPort": 862, "protocol": "UDP", "name": "stamp"} in container["ports"]
    assert container["readinessProbe"]["exec"]["command"][:2] == ["stamp-suite", "127.0.0.1:862"]

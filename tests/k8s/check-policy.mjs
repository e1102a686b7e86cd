// drainmet's own rules for a rendered overlay (tests/k8s/validate.sh), on top of the schema
// check of check-objects.mjs:
//
//   node tests/k8s/check-policy.mjs OVERLAY_NAME FILE
//
// - every pod: runAsNonRoot, seccomp RuntimeDefault, no service account token;
// - every container: read-only root filesystem, no privilege escalation, all capabilities
//   dropped, CPU and memory requests and limits, readiness and liveness probes;
// - drainmet's services: readiness through grpc.health.v1 (native grpc probes); receivers
//   with a preStop pause shorter than their grace period, an HPA on CPU, a TLS Ingress;
//   receivers and outlets scraped by Prometheus; a PodDisruptionBudget for each Deployment;
// - a Redis StatefulSet, if any: AOF with appendfsync always, data on a PVC.
// Prints each broken rule and exits 1 if any, else prints one `ok` line.

import fs from "node:fs";
import YAML from "yaml";

const [overlay, file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node check-policy.mjs OVERLAY_NAME FILE");
  process.exit(2);
}
const objects = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
  .map((d) => d.toJS())
  .filter((o) => o && typeof o === "object");
const problems = [];
const fail = (what, rule) => problems.push(`${overlay}: ${what}: ${rule}`);
const byKind = (kind) => objects.filter((o) => o.kind === kind);
const matches = (selector, labels) =>
  Object.entries((selector && selector.matchLabels) || {}).every(([k, v]) => (labels || {})[k] === v);

const workloads = [...byKind("Deployment"), ...byKind("StatefulSet")];
if (workloads.length === 0) fail(file, "no Deployment or StatefulSet rendered");

for (const w of workloads) {
  const what = `${w.kind}/${w.metadata.name}`;
  const pod = (w.spec.template && w.spec.template.spec) || {};
  const psc = pod.securityContext || {};
  if (psc.runAsNonRoot !== true) fail(what, "pod securityContext.runAsNonRoot must be true");
  if (!psc.seccompProfile || psc.seccompProfile.type !== "RuntimeDefault")
    fail(what, "pod securityContext.seccompProfile.type must be RuntimeDefault");
  if (pod.automountServiceAccountToken !== false) fail(what, "automountServiceAccountToken must be false");
  if (!pod.topologySpreadConstraints && w.kind === "Deployment") fail(what, "needs topologySpreadConstraints");
  const podLabels = (w.spec.template.metadata && w.spec.template.metadata.labels) || {};
  const component = podLabels["app.kubernetes.io/component"];

  for (const c of pod.containers || []) {
    const cw = `${what} container ${c.name}`;
    const sc = c.securityContext || {};
    if (sc.readOnlyRootFilesystem !== true) fail(cw, "securityContext.readOnlyRootFilesystem must be true");
    if (sc.allowPrivilegeEscalation !== false) fail(cw, "securityContext.allowPrivilegeEscalation must be false");
    if (!sc.capabilities || !(sc.capabilities.drop || []).includes("ALL"))
      fail(cw, "securityContext.capabilities.drop must hold ALL");
    for (const side of ["requests", "limits"]) {
      for (const r of ["cpu", "memory"]) {
        if (!c.resources || !c.resources[side] || c.resources[side][r] === undefined)
          fail(cw, `resources.${side}.${r} missing`);
      }
    }
    if (!c.readinessProbe) fail(cw, "readinessProbe missing");
    if (!c.livenessProbe) fail(cw, "livenessProbe missing");
    const drainmet = ["receiver", "outlet", "config"].includes(component);
    if (drainmet && !(c.readinessProbe && c.readinessProbe.grpc))
      fail(cw, "readiness must use grpc.health.v1 (a grpc probe)");
    if (component === "receiver") {
      const pre = c.lifecycle && c.lifecycle.preStop;
      const sleep = pre && pre.exec ? Number((pre.exec.command || []).at(-1)) : NaN;
      if (!(sleep > 0)) fail(cw, "needs a preStop pause (exec sleep N)");
      else if (!(pod.terminationGracePeriodSeconds > sleep + 14))
        fail(cw, `terminationGracePeriodSeconds must exceed preStop ${sleep} s + 14 s of shutdown`);
    }
    if (component === "redis") {
      const args = (c.args || []).join(" ");
      if (!/--appendonly yes/.test(args) || !/--appendfsync always/.test(args))
        fail(cw, "Redis must run with --appendonly yes --appendfsync always");
    }
  }
  if (component === "redis" && !(w.spec.volumeClaimTemplates || []).length) fail(what, "Redis data needs a PVC");

  if (["receiver", "outlet"].includes(component)) {
    const a = (w.spec.template.metadata && w.spec.template.metadata.annotations) || {};
    if (a["prometheus.io/scrape"] !== "true" || !a["prometheus.io/port"])
      fail(what, "needs prometheus.io/scrape and prometheus.io/port annotations");
  }
  if (w.kind === "Deployment" && !byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector, podLabels)))
    fail(what, "no PodDisruptionBudget selects its pods");
  if (component === "receiver") {
    const hpa = byKind("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === w.metadata.name);
    if (!hpa || !(hpa.spec.metrics || []).some((m) => m.resource && m.resource.name === "cpu"))
      fail(what, "needs a HorizontalPodAutoscaler on CPU");
    const service = byKind("Service").find((s) => matches({ matchLabels: s.spec.selector }, podLabels));
    const ingress =
      service &&
      byKind("Ingress").find((i) =>
        (i.spec.rules || []).some((r) =>
          ((r.http && r.http.paths) || []).some((p) => p.backend.service.name === service.metadata.name),
        ),
      );
    if (!ingress || !(ingress.spec.tls || []).length) fail(what, "needs a Service behind an Ingress with TLS");
  }
}

if (problems.length > 0) {
  for (const p of problems) console.log(`FAIL ${p}`);
  process.exit(1);
}
console.log(`ok   ${overlay}: policy (${workloads.length} workloads)`);

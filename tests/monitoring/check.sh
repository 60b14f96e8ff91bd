#!/usr/bin/env bash
# Checks the monitoring assets in config/monitoring with promtool (Debian package: prometheus).
# Run from the repository root: tests/monitoring/check.sh
set -euo pipefail

dir=config/monitoring
dashboard=$dir/grafana-dashboard.json

echo "==> promtool check rules $dir/alerts.yml"
promtool check rules "$dir/alerts.yml"

echo "==> promtool test rules $dir/alerts.test.yml"
promtool test rules "$dir/alerts.test.yml"

echo "==> JSON syntax of $dashboard"
python3 -m json.tool "$dashboard" >/dev/null

# Every panel query becomes a recording rule, so promtool parses it as PromQL. Grafana
# variables are replaced by literals first; any other variable left over is an error.
echo "==> PromQL of every dashboard query"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$dashboard" "$tmp/dashboard-rules.yml" <<'PY'
import json, sys

dash = json.load(open(sys.argv[1]))
assert dash.get("schemaVersion") == 39, "schemaVersion must be 39"
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        exprs.extend((p["title"], t["expr"]) for t in p.get("targets", []) if t.get("expr"))
walk(dash["panels"])
rules = []
for n, (title, expr) in enumerate(exprs, 1):
    e = expr.replace("$instance", "ferry-1:9180").replace("$__rate_interval", "5m")
    if "$" in e:
        sys.exit(f"panel {title!r}: unknown variable in {expr!r}")
    rules.append({"record": f"dashboard:query_{n}", "expr": e})
if not rules:
    sys.exit("no queries found in the dashboard")
# JSON is YAML, so the rules file can be written with json.
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"), indent=1)
print(f"{len(rules)} queries")
PY
promtool check rules "$tmp/dashboard-rules.yml"

echo "==> monitoring checks passed"

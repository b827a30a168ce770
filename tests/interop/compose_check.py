"""Reads compose.yaml (COMPOSE_FILE) as Docker Compose would (YAML anchors and merge keys resolved) and
prints what the packaging test checks, as JSON: the services, and for each Tollgate node
its command, volumes, environment and what it waits for."""
import json
import os

import yaml

with open(os.environ["COMPOSE_FILE"]) as f:
    doc = yaml.safe_load(f)
out = {"services": {}}
for name, svc in doc["services"].items():
    out["services"][name] = {
        "image": svc.get("image"),
        "build": svc.get("build"),
        "command": svc.get("command"),
        "volumes": svc.get("volumes", []),
        "environment": svc.get("environment", {}),
        "depends_on": svc.get("depends_on", {}),
        "ports": svc.get("ports", []),
    }
out["volumes"] = sorted((doc.get("volumes") or {}).keys())
print(json.dumps(out))

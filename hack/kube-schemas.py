#!/usr/bin/env python3
"""Write kubeconform schemas for the kinds in Kubernetes manifests, from a live API server.

    kube-schemas.py OUT_DIR < manifests.yaml      (kubectl on PATH, KUBECONFIG set)

kubeconform downloads its schemas from GitHub by default; no site is reachable here, and the
API server that runs the tests serves the exact OpenAPI v3 of its version. For every
apiVersion/kind at the top level of the manifests this writes
OUT_DIR/<group, or the version for the core group>/<version>/<kind in lower case>.json, a
JSON schema that is the group version's whole OpenAPI document's `components` plus a
`$ref` to the kind, so references resolve inside the file, and where an object lists its
properties, `additionalProperties: false` (kubeconform's -strict only selects "strict"
schemas; it is the schema that refuses unknown fields). Use it with

    kubeconform -strict -schema-location 'OUT_DIR/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json'

Only the Python standard library is used.
"""
import json
import os
import re
import subprocess
import sys


def kinds(text):
    """(apiVersion, kind) of each document's top level."""
    found = set()
    for doc in re.split(r"^---\s*$", text, flags=re.M):
        api = re.search(r"^apiVersion:\s*['\"]?([^\s'\"]+)", doc, flags=re.M)
        kind = re.search(r"^kind:\s*['\"]?([^\s'\"]+)", doc, flags=re.M)
        if api and kind:
            found.add((api.group(1), kind.group(1)))
    return sorted(found)


def strict(schema):
    """Refuse unknown fields in every object schema that lists its properties."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)


def openapi(path):
    out = subprocess.run(["kubectl", "get", "--raw", path], check=True, capture_output=True)
    return json.loads(out.stdout)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    paths = openapi("/openapi/v3")["paths"]
    documents = {}
    for api_version, kind in kinds(sys.stdin.read()):
        path = "api/v1" if api_version == "v1" else f"apis/{api_version}"
        if path not in paths:
            sys.exit(f"the API server serves no {api_version} (for {kind})")
        if path not in documents:
            documents[path] = openapi(paths[path]["serverRelativeURL"])
            strict(documents[path]["components"]["schemas"])
        schemas = documents[path]["components"]["schemas"]
        group, _, version = api_version.rpartition("/")
        names = [
            name
            for name, schema in schemas.items()
            if {"group": group, "version": version, "kind": kind} in schema.get("x-kubernetes-group-version-kind", [])
        ]
        if not names:
            sys.exit(f"the API server's {api_version} document has no {kind}")
        target = os.path.join(out_dir, group or version, version, f"{kind.lower()}.json")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            json.dump({"$ref": f"#/components/schemas/{names[0]}", "components": {"schemas": schemas}}, f)
        print(f"{api_version} {kind} -> {target}", file=sys.stderr)


if __name__ == "__main__":
    main()

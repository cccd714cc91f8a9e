#!/usr/bin/env python3
"""Schemathesis against opslake's Grafana JSON datasource, driven by its own OpenAPI document
(../shared/data/grafana-json-datasource/openapi.yaml), from tests/e2e/openapi.rs:

    grafana_schemathesis.py BASE_URL SPEC

Every request schemathesis makes from the document (its examples, the edges of its schemas,
random ones) must be answered without a server error, with a JSON body the document's response
schema accepts, and every request the document calls valid must be answered 2xx.

Two checks are left out on purpose: the document lists only 200 answers, so a 400 for a body
that is not JSON would count as "undocumented" (`status_code_conformance`); and the datasource
reads what Grafana sends leniently (an empty body is `{}`, unknown fields pass), which
`negative_data_rejection` counts against it. The document's one quirk is mended as the Rust
checks mend it: table `rows` are arrays of cells (the plugin, its README and every server send
them so), not scalars.
"""
import subprocess
import sys
import tempfile

import yaml


def main():
    base, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    table = spec["paths"]["/query"]["post"]["responses"]["200"]["content"]["application/json"][
        "schema"]["items"]["anyOf"][1]["properties"]["rows"]
    table["items"] = {"type": "array",
                      "items": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
        yaml.safe_dump(spec, out)
        patched = out.name
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", patched,
        "--url", base,
        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance,"
                    "positive_data_acceptance",
        "--max-examples", "40",
        "--seed", "20261207",
        "--workers", "1",
        "--generation-deterministic",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(r.stdout[-8000:])
    print(r.stderr[-2000:], file=sys.stderr)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()

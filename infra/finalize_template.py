"""Finish the SAM template that `chalice package --merge-template` wrote, then check it.

Chalice bakes the CORS preflight (the OPTIONS mock integrations) into the REST API's swagger at
package time, with whatever CORS_ALLOW_ORIGIN the packaging process saw. The dashboard's origin
is a stack parameter (FrontendOrigin), so this rewrites those headers to `Fn::Sub` it, and adds
gateway responses (API Gateway's own 4xx/5xx: throttling, timeouts, a missing route) that carry
the same header, so the browser sees those errors instead of a CORS failure.

It then refuses a template the merge left wrong: placeholders from .chalice/config.json, a worker
without the FFmpeg layer, any SQS event source without ReportBatchItemFailures.

It also refuses a stage .chalice/config.json does not define for deployment (`--check-stage`):
Chalice packages an unknown stage silently, with 60 s / 128 MB functions and a DefaultRole on "*".

Usage: python infra/finalize_template.py OUT/sam.yaml   (rewrites the file; exit 1 on a problem)
       python infra/finalize_template.py --check-stage STAGE   (exit 1 when STAGE is not deployable)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is not a dependency

API = "RestAPI"
WORKER = "HandleJobMessages"
WORKER_EVENT = "HandleJobMessagesSqsEventSource"
FUNCTIONS = (
    "APIHandler",
    WORKER,
    "SweepStuckJobs",
    "HandleTableChanges",
    "HandleNotifications",
    "HandleWebhookDeliveries",
)
ORIGIN = {"Fn::Sub": "'${FrontendOrigin}'"}
ALLOW_ORIGIN = "method.response.header.Access-Control-Allow-Origin"
QUEUE = {"Fn::Sub": "${JobsQueueArn}"}
PLACEHOLDERS = ("SET_AT_DEPLOY", "ACCOUNT_ID", "example.com")
CHALICE_CONFIG = Path(__file__).resolve().parents[1] / ".chalice" / "config.json"
API_GATEWAY_TIMEOUT = 29  # seconds: API Gateway's integration timeout for a REST API
# API Gateway's own errors, in the project's {code, message} shape.
GATEWAY_ERROR_BODY = '{"code": "$context.error.responseType", "message": $context.error.messageString}'


def set_preflight_origin(template: dict[str, Any]) -> int:
    """Point every OPTIONS mock's Allow-Origin at the FrontendOrigin parameter; return how many."""
    changed = 0
    for methods in _swagger(template).get("paths", {}).values():
        integration = methods.get("options", {}).get("x-amazon-apigateway-integration", {})
        if integration.get("type") != "mock":
            continue
        for response in integration.get("responses", {}).values():
            params = response.get("responseParameters", {})
            if ALLOW_ORIGIN in params:
                params[ALLOW_ORIGIN] = dict(ORIGIN)
                changed += 1
    return changed


def add_gateway_responses(template: dict[str, Any]) -> None:
    responses = {}
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        responses[kind] = {
            "responseParameters": {
                "gatewayresponse.header.Access-Control-Allow-Origin": dict(ORIGIN),
                "gatewayresponse.header.Vary": "'Origin'",
            },
            "responseTemplates": {"application/json": GATEWAY_ERROR_BODY},
        }
    _swagger(template)["x-amazon-apigateway-gateway-responses"] = responses


def problems(template: dict[str, Any]) -> list[str]:
    """What would make this template deploy a broken service."""
    found = []
    resources = template.get("Resources", {})
    for name in FUNCTIONS:
        if name not in resources:
            found.append(f"{name}: missing (did Chalice rename its logical IDs?)")
            continue
        env = resources[name].get("Properties", {}).get("Environment", {}).get("Variables", {})
        for key, value in env.items():
            if isinstance(value, str) and any(p in value for p in PLACEHOLDERS):
                found.append(f"{name}: {key} is still the placeholder {value!r} from .chalice/config.json")
    worker = resources.get(WORKER, {}).get("Properties", {})
    event = worker.get("Events", {}).get(WORKER_EVENT, {}).get("Properties", {})
    if "ReportBatchItemFailures" not in event.get("FunctionResponseTypes", []):
        found.append(f"{WORKER}.{WORKER_EVENT}: FunctionResponseTypes lacks ReportBatchItemFailures")
    if event.get("Queue") != QUEUE:
        found.append(f"{WORKER}.{WORKER_EVENT}: Queue is not the JobsQueueArn parameter")
    if not worker.get("Layers"):
        found.append(f"{WORKER}: no FFmpeg layer")
    for name in FUNCTIONS:  # every SQS event source reports its failed records, not the batch
        for event_name, source in resources.get(name, {}).get("Properties", {}).get("Events", {}).items():
            props = source.get("Properties", {})
            if source.get("Type") == "SQS" and "ReportBatchItemFailures" not in props.get(
                "FunctionResponseTypes", []
            ):
                found.append(f"{name}.{event_name}: FunctionResponseTypes lacks ReportBatchItemFailures")
    for name in FUNCTIONS:
        role = resources.get(name, {}).get("Properties", {}).get("Role")
        if not (isinstance(role, dict) and role.get("Fn::GetAtt", [None])[0] in resources):
            found.append(f"{name}: Role is {role!r}, not one of this template's roles")
    if "DefaultRole" in resources:
        found.append("DefaultRole: Chalice generated its own role (is the stage's manage_iam_role false?)")
    api_timeout = resources.get("APIHandler", {}).get("Properties", {}).get("Timeout")
    if isinstance(api_timeout, int) and api_timeout > API_GATEWAY_TIMEOUT:
        found.append(f"APIHandler: Timeout {api_timeout} s is over API Gateway's {API_GATEWAY_TIMEOUT} s")
    for where, keys in _mixed_intrinsics(resources):
        found.append(f"{where}: two intrinsic functions in one mapping {keys}")
    paths = _swagger(template).get("paths", {})
    for path, methods in paths.items():
        integration = methods.get("options", {}).get("x-amazon-apigateway-integration", {})
        for response in integration.get("responses", {}).values():
            origin = response.get("responseParameters", {}).get(ALLOW_ORIGIN)
            if origin is not None and origin != ORIGIN:
                found.append(f"OPTIONS {path}: Access-Control-Allow-Origin is {origin!r}")
    return found


def _mixed_intrinsics(node: Any, where: str = "Resources") -> list[tuple[str, list[str]]]:
    """Mappings holding two intrinsics at once: what a deep merge of Ref over Fn::Sub leaves."""
    found = []
    if isinstance(node, dict):
        keys = sorted(k for k in node if k == "Ref" or k.startswith("Fn::"))
        if len(keys) > 1:
            found.append((where, keys))
        for key, value in node.items():
            found.extend(_mixed_intrinsics(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_mixed_intrinsics(value, f"{where}[{i}]"))
    return found


def finalize(template: dict[str, Any]) -> list[str]:
    set_preflight_origin(template)
    add_gateway_responses(template)
    return problems(template)


def _swagger(template: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = template["Resources"][API]["Properties"]["DefinitionBody"]
    return body


class _NoAliasDumper(yaml.SafeDumper):
    # CloudFormation rejects YAML aliases; the merge can leave one object in two places.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def stage_problems(stage: str, config: dict[str, Any]) -> list[str]:
    """Why `stage` cannot be packaged for deployment with this .chalice/config.json."""
    stages: dict[str, Any] = config.get("stages", {})
    if stage not in stages:
        return [f"unknown stage {stage!r}: .chalice/config.json defines {', '.join(sorted(stages))}"]
    settings = stages[stage]
    found = []
    if settings.get("manage_iam_role") is not False or not settings.get("iam_role_arn"):
        found.append(
            f"stage {stage!r}: set manage_iam_role false and iam_role_arn (the roles are in the merge)"
        )
    timeout = settings.get("lambda_timeout", 60)
    if timeout > API_GATEWAY_TIMEOUT:
        found.append(
            f"stage {stage!r}: lambda_timeout {timeout} s is over API Gateway's {API_GATEWAY_TIMEOUT} s"
        )
    if "environment_variables" not in settings:
        found.append(f"stage {stage!r}: no environment_variables")
    return found


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--check-stage":
        stage_found = stage_problems(argv[2], json.loads(CHALICE_CONFIG.read_text()))
        for problem in stage_found:
            print(f"refused: {problem}", file=sys.stderr)
        return 1 if stage_found else 0
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    path = Path(argv[1])
    template = yaml.safe_load(path.read_text())
    found = finalize(template)
    path.write_text(yaml.dump(template, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True))
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The deployment templates agree with the code: tables with the pynamodb models, the queue with the
worker's timeout, the merge template with Chalice's logical IDs, deploy.sh with the stacks' outputs.

No network and no AWS: the templates are parsed with PyYAML (CloudFormation's short tags included),
the merge is done with Chalice's own merger, and deploy.sh runs with --dry-run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is not a dependency
from chalice.package import TemplateDeepMerger, YAMLTemplateSerializer
from chalice.utils import to_cfn_resource_name

from chalicelib.adapters import dynamodb

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
RESOURCES = INFRA / "resources.yaml"
MERGE = INFRA / "chalice-merge.yaml"
DEPLOY = INFRA / "deploy.sh"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
STAGE = "prod"

API_FUNCTION = "APIHandler"  # Chalice's fixed name for the REST API's function
IAM_ACTION_THAT_DOES_NOT_EXIST = "dynamodb:TransactWriteItems"  # items are authorised one by one


# --- loading ---------------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...) as long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    tag = node.tag[1:]
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=CfnLoader)
    return loaded


def resources() -> dict[str, Any]:
    return _load(RESOURCES)


def merge_template() -> dict[str, Any]:
    return _load(MERGE)


def chalice_stage() -> dict[str, Any]:
    stage: dict[str, Any] = json.loads(CHALICE_CONFIG.read_text())["stages"][STAGE]
    return stage


def finalize_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("finalize_template", INFRA / "finalize_template.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]
    return found


def _table_for(kind: str) -> dict[str, Any]:
    wanted = {"Fn::Sub": f"${{TablePrefix}}-{kind}"}
    tables = [
        r["Properties"]
        for r in resources()["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table" and r["Properties"]["TableName"] == wanted
    ]
    assert len(tables) == 1, f"expected one table named {{TablePrefix}}-{kind}, found {len(tables)}"
    return tables[0]


def _keys(key_schema: list[dict[str, str]]) -> dict[str, str]:
    return {k["AttributeName"]: k["KeyType"] for k in key_schema}


def _attribute_types(definitions: list[dict[str, str]]) -> dict[str, str]:
    return {a["AttributeName"]: a["AttributeType"] for a in definitions}


def _worker_name() -> str:
    sqs = [
        e for e in _app().event_sources if type(e).__name__ == "SQSEventConfig" and e.queue == "vidproc-jobs"
    ]
    assert len(sqs) == 1
    return str(sqs[0].name)


NOTIFIER_FUNCTIONS = ("HandleTableChanges", "HandleNotifications", "HandleWebhookDeliveries")


def _worker_function() -> str:
    return str(to_cfn_resource_name(_worker_name()))


def _worker_event() -> str:
    # chalice/deploy/appgraph.py names it "<function>-sqs-event-source".
    return str(to_cfn_resource_name(f"{_worker_name()}-sqs-event-source"))


def _sweeper_function() -> str:
    scheduled = [e for e in _app().event_sources if type(e).__name__ == "ScheduledEventConfig"]
    assert len(scheduled) == 1
    return str(to_cfn_resource_name(scheduled[0].name))


@cache
def _app() -> Any:
    import app

    return app.app


def _worker_timeout_in_chalice_config() -> int:
    config = json.loads(CHALICE_CONFIG.read_text())
    stage = config["stages"][STAGE]
    per_function = stage.get("lambda_functions", {}).get(_worker_name(), {})
    default = stage.get("lambda_timeout", config.get("lambda_timeout", 60))
    return int(per_function.get("lambda_timeout", default))


# --- (a) tables = pynamodb models -----------------------------------------------------------------------
@pytest.mark.parametrize("model", dynamodb.MODELS, ids=lambda m: m.Meta.kind)
def test_each_models_table_has_its_key_schema_and_indexes(model: Any) -> None:
    schema = model._get_schema()
    table = _table_for(model.Meta.kind)

    assert _keys(table["KeySchema"]) == _keys(schema["key_schema"])
    assert _attribute_types(table["AttributeDefinitions"]) == _attribute_types(
        schema["attribute_definitions"]
    )
    expected_indexes = {
        gsi["index_name"]: (_keys(gsi["key_schema"]), gsi["projection"]["ProjectionType"])
        for gsi in schema["global_secondary_indexes"]
    }
    actual_indexes = {
        gsi["IndexName"]: (_keys(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in table.get("GlobalSecondaryIndexes", [])
    }
    assert actual_indexes == expected_indexes
    assert not schema["local_secondary_indexes"] and "LocalSecondaryIndexes" not in table


def test_the_idempotency_table_expires_answers_on_their_ttl_attribute() -> None:
    from chalicelib.adapters.dynamodb.models import AnswerModel

    table = _table_for(dynamodb.IDEMPOTENCY_KIND)
    assert _keys(table["KeySchema"]) == {AnswerModel.id.attr_name: "HASH"}
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": AnswerModel.expiration.attr_name,
        "Enabled": True,
    }


def test_every_table_is_on_demand_with_point_in_time_recovery_and_kept_on_delete() -> None:
    tables = {k: r for k, r in resources()["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    kinds = {m.Meta.kind for m in dynamodb.MODELS} | {dynamodb.IDEMPOTENCY_KIND}  # type: ignore[attr-defined]

    assert len(tables) == len(kinds) == 12
    for name, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", name


# --- (b) the queue and the worker's timeout ---------------------------------------------------------
def test_jobs_queue_outlasts_the_worker_and_redrives_to_a_14_day_dlq() -> None:
    queue = _resource(resources(), "JobsQueue")["Properties"]
    dlq = _resource(resources(), "JobsDeadLetterQueue")["Properties"]
    merged_timeout = _resource(merge_template(), _worker_function())["Properties"]["Timeout"]

    assert queue["VisibilityTimeout"] >= _worker_timeout_in_chalice_config()
    assert queue["VisibilityTimeout"] >= merged_timeout
    assert merged_timeout == _worker_timeout_in_chalice_config(), "keep the two worker timeouts equal"
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_visibility_timeout_is_six_times_the_workers_timeout() -> None:
    # AWS's advice for a Lambda event source: with less, throttled batches look like poison.
    queue = _resource(resources(), "JobsQueue")["Properties"]
    assert queue["VisibilityTimeout"] == 6 * _worker_timeout_in_chalice_config()


def _alarms() -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"], _dimension(a)): a["Properties"]
        for template in (resources(), merge_template())
        for a in template["Resources"].values()
        if a.get("Type") == "AWS::CloudWatch::Alarm"
    }


def _queues() -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in resources()["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}


def _dead_letter_queues() -> set[str]:
    return {
        q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in _queues().values()
        if "RedrivePolicy" in q
    }


def test_every_failure_has_an_alarm_and_prod_requires_a_topic() -> None:
    alarms = _alarms()
    assert set(alarms) == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "JobsDeadLetterQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "JobsQueue"),
        ("AWS/Lambda", "Errors", _worker_function()),
        ("AWS/Lambda", "Throttles", _worker_function()),
        ("AWS/Lambda", "Errors", _sweeper_function()),
        ("AWS/ApiGateway", "5XXError", "vidproc-${Stage}-api"),
        # the notifier's, like the worker's: errors, throttles, the age of what waits
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "NotificationsDeadLetterQueue"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "WebhookDeadLetterQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "NotificationsQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "WebhookQueue"),
        ("AWS/Lambda", "Errors", "HandleTableChanges"),
        ("AWS/Lambda", "IteratorAge", "HandleTableChanges"),
        ("AWS/Lambda", "Errors", "HandleNotifications"),
        ("AWS/Lambda", "Throttles", "HandleNotifications"),
        ("AWS/Lambda", "Errors", "HandleWebhookDeliveries"),
        ("AWS/Lambda", "Throttles", "HandleWebhookDeliveries"),
    }
    for props in alarms.values():
        assert props["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
    for template in (resources(), merge_template()):
        rule = template["Rules"]["ProdNeedsAlarmTopic"]
        assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
        assert rule["Assertions"][0]["Assert"] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
        }
    api = _resource(merge_template(), "RestAPI")["Properties"]
    assert api["Name"] == {"Fn::Sub": "vidproc-${Stage}-api"}  # the 5XXError alarm's ApiName


def test_every_dead_letter_queue_has_an_alarm_when_it_holds_anything() -> None:
    watched = {
        dimension
        for (namespace, metric, dimension), props in _alarms().items()
        if (namespace, metric) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        and props["Threshold"] == 0
        and props["ComparisonOperator"] == "GreaterThanThreshold"
    }
    assert _dead_letter_queues() == {
        "JobsDeadLetterQueue",
        "NotificationsDeadLetterQueue",
        "WebhookDeadLetterQueue",
    }
    assert _dead_letter_queues() <= watched


def _sqs_functions() -> dict[str, str]:
    """Every function an SQS queue triggers (in the merge template): function -> the queue's
    logical id in resources.yaml (through the parameter that carries its ARN)."""
    arn_outputs = {
        o["Value"]["Fn::GetAtt"][0]: name
        for name, o in resources()["Outputs"].items()
        if isinstance(o["Value"], dict) and o["Value"].get("Fn::GetAtt", [None, None])[1] == "Arn"
    }
    by_parameter = {output: queue for queue, output in arn_outputs.items()}
    found = {}
    for name, resource in merge_template()["Resources"].items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            queue = event.get("Properties", {}).get("Queue")
            if queue is not None:
                parameter = queue["Fn::Sub"].strip("${}")
                found[name] = by_parameter[parameter]
    return found


def _timeout_in_chalice_config(function: str) -> int:
    stage = chalice_stage()
    names = {str(to_cfn_resource_name(n)): n for n in stage.get("lambda_functions", {})}
    per_function = stage.get("lambda_functions", {}).get(names.get(function, ""), {})
    return int(per_function.get("lambda_timeout", stage["lambda_timeout"]))


def test_every_queue_that_feeds_a_function_is_visible_six_times_its_timeout() -> None:
    # AWS's advice for a Lambda event source: with less, a batch that waits out throttling
    # becomes visible again, is received again and reaches the DLQ as if it were poison.
    pairs = _sqs_functions()
    assert set(pairs) == {_worker_function(), "HandleNotifications", "HandleWebhookDeliveries"}
    assert {a.queue for a in _app().event_sources if type(a).__name__ == "SQSEventConfig"} == {
        "vidproc-jobs",
        "vidproc-notifications",
        "vidproc-webhooks",
    }
    for function, queue in pairs.items():
        merged = _resource(merge_template(), function)["Properties"]["Timeout"]
        assert merged == _timeout_in_chalice_config(function), f"{function}: keep both timeouts equal"
        visibility = _queues()[queue]["VisibilityTimeout"]
        assert visibility >= 6 * merged, f"{queue}: {visibility} s for {function}'s {merged} s"


def test_the_notifiers_functions_have_reserved_concurrency_and_their_sources_stay_within_it() -> None:
    for function in ("HandleNotifications", "HandleWebhookDeliveries"):
        props = _resource(merge_template(), function)["Properties"]
        [event] = props["Events"].values()
        scaling = event["Properties"]["ScalingConfig"]
        assert props["ReservedConcurrentExecutions"] == scaling["MaximumConcurrency"]
    webhook = merge_template()["Parameters"]["WebhookConcurrency"]
    from chalicelib.config import Settings

    # One workspace's slow endpoints hold at most its try slots: others keep the rest.
    assert webhook["MinValue"] >= 2 and webhook["Default"] > 2 * Settings().webhook_max_concurrent_tries


def test_the_api_stage_is_throttled() -> None:
    [setting] = _resource(merge_template(), "RestAPI")["Properties"]["MethodSettings"]
    assert setting["ResourcePath"] == "/*" and setting["HttpMethod"] == "*"
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}


def test_every_queue_refuses_requests_without_tls() -> None:
    refused: set[str] = set()
    for r in resources()["Resources"].values():
        if r["Type"] != "AWS::SQS::QueuePolicy":
            continue
        for statement in r["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                refused |= {target["Fn::GetAtt"][0] for target in statement["Resource"]}
    assert refused == set(_queues())


def test_no_function_environment_holds_a_secret_and_only_signers_read_the_signing_key() -> None:
    # GetFunctionConfiguration shows a function's environment to anyone allowed to call it.
    functions = (API_FUNCTION, _worker_function(), _sweeper_function(), *NOTIFIER_FUNCTIONS)
    env = {f: _resource(merge_template(), f)["Properties"]["Environment"]["Variables"] for f in functions}
    for function, variables in env.items():
        text = json.dumps(variables)
        assert "resolve:secretsmanager" not in text and "resolve:ssm-secure" not in text, function
        assert "NOTIFY_SIGNING_KEY" not in variables and "R2_SECRET_ACCESS_KEY" not in variables, function
    signers = {f for f, v in env.items() if v.get("NOTIFY_SIGNING_SECRET_ID")}
    assert signers == {API_FUNCTION, "HandleNotifications"}  # the unsubscribe route; the emails
    readers = {
        role
        for role in ROLES.values()
        if _granted_refs(role, "secretsmanager:GetSecretValue") & {"NotifySigningSecretArn"}
    }
    assert readers == {ROLES[API_FUNCTION], ROLES["HandleNotifications"]}


def test_email_is_sent_only_from_the_configured_sender_and_only_by_the_fan_out() -> None:
    senders = {role for role in ROLES.values() if "ses:SendEmail" in _actions(_statements(role))}
    assert senders == {"FanOutRole"}
    [statement] = [s for s in _statements("FanOutRole") if "ses:SendEmail" in _as_list(s["Action"])]
    assert "identity/*" not in json.dumps(statement["Resource"])
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "NotifyEmailFrom"}}}


def test_each_function_has_its_own_role() -> None:
    functions = (API_FUNCTION, _worker_function(), _sweeper_function(), *NOTIFIER_FUNCTIONS)
    roles = {f: _resource(merge_template(), f)["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions}
    assert roles == ROLES


def test_deployment_artifacts_never_expire() -> None:
    # A rollback re-reads the code and layer of the version it returns to, however old.
    bucket = _resource(resources(), "ArtifactsBucket")["Properties"]
    for rule in bucket["LifecycleConfiguration"]["Rules"]:
        assert not {"ExpirationInDays", "ExpirationDate", "NoncurrentVersionExpiration"} & set(rule)


def test_worker_deadlines_nest_inside_the_visibility_timeout() -> None:
    # A transcode must end before Lambda kills the worker; a lease must not run out while the
    # worker lives; a message must not reappear before the lease has run out.
    worker = _resource(merge_template(), _worker_function())["Properties"]
    env = worker["Environment"]["Variables"]
    visibility = _resource(resources(), "JobsQueue")["Properties"]["VisibilityTimeout"]

    assert int(env["TRANSCODE_TIMEOUT_SECONDS"]) < worker["Timeout"] <= int(env["CLAIM_LEASE_SECONDS"])
    assert int(env["CLAIM_LEASE_SECONDS"]) < visibility


def test_queue_name_matches_the_prod_stage_config() -> None:
    name = _resource(resources(), "JobsQueue")["Properties"]["QueueName"]["Fn::Sub"]
    prefix = resources()["Parameters"]["TablePrefix"]["Default"]
    env = chalice_stage().get("environment_variables", {})

    assert name.replace("${Stage}", STAGE) == env.get("JOBS_QUEUE_NAME", f"vidproc-{STAGE}-jobs")
    assert prefix == env.get("TABLE_PREFIX", f"vidproc-{STAGE}")


# --- (c) the merge template -----------------------------------------------------------------------
def test_merge_template_sets_report_batch_item_failures_on_the_workers_sqs_event() -> None:
    worker = _resource(merge_template(), _worker_function())["Properties"]
    event = worker["Events"][_worker_event()]["Properties"]

    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Queue"] == {"Fn::Sub": "${JobsQueueArn}"}
    assert worker["Layers"] == [{"Ref": "FfmpegLayerArn"}]
    assert worker["EphemeralStorage"] == {"Size": 10240}
    assert worker["Environment"]["Variables"]["FFMPEG_PATH"] == "/opt/bin/ffmpeg"


ROLES = {
    API_FUNCTION: "ApiRole",
    "HandleJobMessages": "WorkerRole",
    "SweepStuckJobs": "SweeperRole",
    "HandleTableChanges": "StreamRole",
    "HandleNotifications": "FanOutRole",
    "HandleWebhookDeliveries": "WebhookRole",
}


def _statements(role: str) -> list[dict[str, Any]]:
    policy = _resource(merge_template(), role)["Properties"]["Policies"][0]["PolicyDocument"]
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def _granted_refs(role: str, action: str) -> set[str]:
    return {
        t["Ref"]
        for s in _statements(role)
        if action in _as_list(s["Action"])
        for t in _as_list(s["Resource"])
        if isinstance(t, dict) and "Ref" in t
    }


def test_merge_template_names_only_resources_chalice_generates() -> None:
    generated = {API_FUNCTION, _worker_function(), _sweeper_function(), *NOTIFIER_FUNCTIONS, "RestAPI"}
    touched = {k for k, r in merge_template()["Resources"].items() if "Type" not in r}

    assert touched == generated


def test_merge_replaces_every_placeholder_of_the_stage_config_for_every_function() -> None:
    env = chalice_stage().get("environment_variables", {})
    placeholders = {k for k, v in env.items() if v == "" or "SET_AT_DEPLOY" in v or "ACCOUNT_ID" in v}
    placeholders |= {"CORS_ALLOW_ORIGIN"}  # the dashboard's origin is only known after the resources stack

    for function in (API_FUNCTION, _worker_function(), _sweeper_function(), *NOTIFIER_FUNCTIONS):
        overridden = set(_resource(merge_template(), function)["Properties"]["Environment"]["Variables"])
        assert placeholders <= overridden, f"{function} keeps {placeholders - overridden}"


def test_chalices_own_merge_yields_a_template_finalize_accepts() -> None:
    # GIVEN the template Chalice 1.34 generates for app.py (the parts the merge touches)
    generated = _chalice_shaped_template()
    # WHEN Chalice loads and deep-merges infra/chalice-merge.yaml, then finalize_template runs
    merge = YAMLTemplateSerializer().load_template(MERGE.read_text(), str(MERGE))
    merged = TemplateDeepMerger().merge(merge, generated)
    finalize = finalize_module()
    problems = finalize.finalize(merged)
    # THEN nothing is left wrong, and the preflight's origin is the parameter
    assert problems == []
    options = merged["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]["/jobs"]["options"]
    headers = options["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
    assert headers["method.response.header.Access-Control-Allow-Origin"] == {"Fn::Sub": "'${FrontendOrigin}'"}
    worker = merged["Resources"][_worker_function()]["Properties"]
    assert worker["Role"] == {"Fn::GetAtt": ["WorkerRole", "Arn"]}
    assert worker["Events"][_worker_event()]["Properties"]["BatchSize"] == 5  # Chalice's values survive


def test_finalize_rejects_a_merge_that_mixed_two_intrinsics() -> None:
    template = _chalice_shaped_template()
    event = template["Resources"][_worker_function()]["Properties"]["Events"][_worker_event()]
    event["Properties"]["Queue"]["Ref"] = "JobsQueueArn"  # what merging !Ref over Chalice's Fn::Sub gives

    problems = finalize_module().finalize(template)

    assert any("two intrinsic functions" in p for p in problems)
    assert any("ReportBatchItemFailures" in p for p in problems)
    assert any("SET_AT_DEPLOY" in p for p in problems)


def test_each_role_writes_only_the_tables_its_function_writes() -> None:
    # tests/integration/test_iam_trace.py checks every grant against the traced calls; this is
    # the offline part: who may write what.
    statements = {role: _statements(role) for role in ROLES.values()}

    def written(role: str) -> set[str]:
        tables = set()
        for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            tables |= {t.rsplit("}-", 1)[1] for t in _granted(statements[role], action)}
        return tables

    # members: UpdateItem of the member's own emailEvents and pushEvents only (their choices)
    assert written("ApiRole") == {
        "jobs",
        "attempts",
        "workspaces",
        "ledger",
        "idempotency",
        "members",
        "webhooks",
        "deliveries",
        "payments",
        "limits",
        "push-subscriptions",  # a person's own browsers (Web Push)
    }
    [prefs] = [s for s in statements["ApiRole"] if s.get("Sid") == "MemberEmailPreferences"]
    assert prefs["Action"] == "dynamodb:UpdateItem"
    assert prefs["Condition"] == {
        "ForAllValues:StringEquals": {
            "dynamodb:Attributes": [
                "userId",
                "workspaceId",
                "emailEvents",
                "emailEventsVersion",
                "pushEvents",
            ]
        }
    }
    assert not {"dynamodb:PutItem", "dynamodb:DeleteItem"} & {
        a for s in statements["ApiRole"] for a in _as_list(s["Action"]) if "members" in str(s["Resource"])
    }
    assert written("WorkerRole") == written("SweeperRole") == {"jobs", "attempts", "workspaces", "ledger"}
    # The notifier's functions never write a member (the webhook function, which talks to the
    # internet, writes only its deliveries, its endpoints' streaks and its try slots).
    assert written("StreamRole") == set()
    assert written("FanOutRole") == {"deliveries", "sent-emails", "push-subscriptions"}
    assert written("WebhookRole") == {"webhooks", "deliveries", "limits"}
    assert "sqs:ReceiveMessage" in _actions(statements["WorkerRole"])
    assert "sqs:SendMessage" in _actions(statements["SweeperRole"]) & _actions(statements["ApiRole"])
    for role, stmts in statements.items():
        assert IAM_ACTION_THAT_DOES_NOT_EXIST not in _actions(stmts), role


def test_finalize_rejects_chalices_default_role_and_an_api_slower_than_api_gateway() -> None:
    template = _chalice_shaped_template()
    template["Resources"]["DefaultRole"] = {"Type": "AWS::IAM::Role", "Properties": {}}
    template["Resources"][API_FUNCTION]["Properties"]["Timeout"] = 30

    problems = finalize_module().finalize(template)

    assert any(p.startswith("DefaultRole") for p in problems)
    assert any("over API Gateway's 29 s" in p for p in problems)


def test_only_a_stage_defined_for_deployment_can_be_packaged() -> None:
    finalize = finalize_module()
    config = json.loads(CHALICE_CONFIG.read_text())

    assert finalize.stage_problems(STAGE, config) == []
    assert "unknown stage" in finalize.stage_problems("staging", config)[0]
    assert any("manage_iam_role" in p for p in finalize.stage_problems("dev", config))
    assert chalice_stage()["lambda_timeout"] <= 29  # API Gateway answers 504 at 29 s
    refused = subprocess.run(
        ["bash", str(INFRA / "package.sh"), "staging", "/tmp/never-written"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "unknown stage 'staging'" in refused.stderr
    assert not Path("/tmp/never-written").exists()


# --- (d) Cognito ----------------------------------------------------------------------------------
def test_the_notifier_reads_the_three_streams_from_their_oldest_record_and_retries_until_it_succeeds() -> (
    None
):
    template = merge_template()["Resources"]
    mappings = [
        r["Properties"] for r in template.values() if r.get("Type") == "AWS::Lambda::EventSourceMapping"
    ]
    sources = {m["EventSourceArn"]["Ref"] for m in mappings}
    outputs = resources()["Outputs"]

    assert sources == {"JobsStreamArn", "AttemptsStreamArn", "WorkspacesStreamArn"}
    assert all(outputs[s]["Value"]["Fn::GetAtt"][1] == "StreamArn" for s in sources)
    for m in mappings:
        assert m["FunctionName"] == {"Ref": "HandleTableChanges"}
        assert m["StartingPosition"] == "TRIM_HORIZON" and m["MaximumRetryAttempts"] == -1
    for model in (dynamodb.WorkspaceModel, dynamodb.JobModel, dynamodb.AttemptModel):
        stream = _table_for(model.Meta.kind)["StreamSpecification"]
        assert stream == {"StreamViewType": model.Meta.stream_view_type}
    notifications = template["HandleNotifications"]["Properties"]
    event = notifications["Events"]["HandleNotificationsSqsEventSource"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = _resource(resources(), "NotificationsQueue")["Properties"]
    assert queue["VisibilityTimeout"] > notifications["Timeout"]


def test_the_web_client_is_public_and_allows_user_password_auth() -> None:
    client = _resource(resources(), "WebClient")["Properties"]
    pool = _resource(resources(), "UserPool")["Properties"]

    assert {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"} <= set(client["ExplicitAuthFlows"])
    assert client["GenerateSecret"] is False
    assert pool["UsernameAttributes"] == ["email"]


# --- (e) deploy.sh ----------------------------------------------------------------------------------
def test_deploy_script_parses() -> None:
    subprocess.run(["bash", "-n", str(DEPLOY)], check=True)


def test_dry_run_prints_the_whole_sequence_with_the_stacks_outputs() -> None:
    outputs = {
        "JobsQueueArn": "arn:aws:sqs:eu-west-1:123456789012:vidproc-prod-jobs",
        "UserPoolClientId": "client123",
        "FrontendOrigin": "https://d111.cloudfront.net",
        "EndpointURL": "https://abc.execute-api.eu-west-1.amazonaws.com/api/",
    }
    build_existed = (INFRA / "build").exists()

    result = _dry_run({f"STACK_OUTPUT_{k}": v for k, v in outputs.items()})

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^\+ env PYTHON=\S+ CHALICE=\S*chalice bash infra/package\.sh prod \S+$", out, re.M)
    assert (
        "+ aws cloudformation deploy --stack-name vidproc-prod-resources --template-file infra/resources.yaml"
        in out
    )
    assert f"JobsQueueArn={outputs['JobsQueueArn']}" in out
    assert "infra/package.sh prod" in out and "aws cloudformation package" in out and "make layer" in out
    assert "put-bucket-cors" in out and outputs["FrontendOrigin"] in out
    assert "put-bucket-lifecycle-configuration" in out and "infra/r2-lifecycle.json" in out
    assert "create-invalidation" in out
    config = _printed_config_js(out)
    assert config["apiBaseUrl"] == outputs["EndpointURL"]
    assert config["cognitoEndpoint"] == "https://cognito-idp.eu-west-1.amazonaws.com/"
    assert config["cognitoClientId"] == "client123"
    assert set(config) == _example_config_keys()
    assert (INFRA / "build").exists() == build_existed, "a dry run writes nothing into the tree"


def test_dry_run_order_is_resources_layer_package_deploy_then_frontend() -> None:
    out = _dry_run({}).stdout
    steps = [
        "infra/resources.yaml",
        "make layer",
        "infra/package.sh",
        "aws cloudformation package",
        "--stack-name vidproc-prod-app",
        "put-bucket-cors",
        "aws s3 sync",
        "create-invalidation",
    ]

    positions = [out.index(step) for step in steps]

    assert positions == sorted(positions)


def test_deploy_refuses_to_start_without_its_settings() -> None:
    result = _dry_run({}, drop=("R2_ACCOUNT_ID",))

    assert result.returncode != 0
    assert "R2_ACCOUNT_ID" in result.stderr


def test_deploy_refuses_prod_without_an_alarm_topic_and_an_unknown_stage() -> None:
    no_topic = _dry_run({}, drop=("ALARM_TOPIC_ARN",))
    unknown = _dry_run({"STAGE": "staging"})

    assert no_topic.returncode != 0 and "ALARM_TOPIC_ARN" in no_topic.stderr
    assert unknown.returncode != 0 and "unknown stage 'staging'" in unknown.stderr


def test_deploy_reads_only_outputs_the_resources_stack_has_and_passes_every_app_parameter() -> None:
    script = DEPLOY.read_text()
    read = set(re.findall(r"\$\(res (\w+)\)", script))
    passed = set(re.findall(r'^\s+"(\w+)=\$', script, re.M))
    required = {k for k, p in merge_template()["Parameters"].items() if "Default" not in p}

    assert read <= set(resources()["Outputs"])
    assert required <= passed
    assert "EndpointURL" in script  # Chalice's own output of the app stack


# --- helpers ---------------------------------------------------------------------------------------
def _granted(statements: list[dict[str, Any]], action: str) -> set[str]:
    found: set[str] = set()
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if s["Effect"] == "Allow" and action in actions:
            targets = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            found |= {t["Fn::Sub"] for t in targets if isinstance(t, dict) and "Fn::Sub" in t}
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _dimension(alarm: dict[str, Any]) -> str:
    [value] = [
        d["Value"]
        for d in alarm["Properties"]["Dimensions"]
        if d["Name"] in ("QueueName", "FunctionName", "ApiName")
    ]
    if "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::Sub"])


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def _dry_run(extra_env: dict[str, str], drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_REGION": "eu-west-1",
        "R2_ACCOUNT_ID": "0123456789abcdef",
        "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:000000000000:vidproc-alarms",
        "PYTHON": sys.executable,
        **extra_env,
    }
    for name in drop:
        env.pop(name, None)
    return subprocess.run(
        ["bash", str(DEPLOY), "--dry-run"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _printed_config_js(out: str) -> dict[str, Any]:
    match = re.search(r"window\.APP_CONFIG = (\{.*?\});", out, re.S)
    assert match, "config.js was not printed"
    parsed: dict[str, Any] = json.loads(match.group(1))
    return parsed


def _example_config_keys() -> set[str]:
    example = (ROOT / "frontend" / "config.js.example").read_text()
    return set(re.findall(r"^\s+(\w+):", example, re.M))


def _chalice_shaped_template() -> dict[str, Any]:
    """The resources `chalice package --stage prod` (1.34) writes for app.py, as far as the merge goes."""
    env = dict(chalice_stage().get("environment_variables", {}))
    role = chalice_stage()["iam_role_arn"]  # manage_iam_role false: Chalice writes the ARN, no DefaultRole

    def function(handler: str, timeout: int, memory: int) -> dict[str, Any]:
        return {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Runtime": "python3.11",
                "Handler": handler,
                "CodeUri": "./deployment.zip",
                "Tracing": "PassThrough",
                "Timeout": timeout,
                "MemorySize": memory,
                "Environment": {"Variables": dict(env)},
                "Role": role,
            },
        }

    worker = function("app.handle_job_messages", 900, 2048)
    worker["Properties"]["Events"] = {
        _worker_event(): {
            "Type": "SQS",
            "Properties": {
                "Queue": {
                    "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:vidproc-jobs"
                },
                "BatchSize": 5,
                "MaximumBatchingWindowInSeconds": 1,
            },
        }
    }
    notifications = function("app.handle_notifications", 60, 512)
    notifications["Properties"]["Events"] = {
        "HandleNotificationsSqsEventSource": {
            "Type": "SQS",
            "Properties": {
                "Queue": {
                    "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
                    + "vidproc-notifications"
                },
                "BatchSize": 10,
            },
        }
    }
    webhooks = function("app.handle_webhook_deliveries", 60, 256)
    webhooks["Properties"]["Events"] = {
        "HandleWebhookDeliveriesSqsEventSource": {
            "Type": "SQS",
            "Properties": {
                "Queue": {
                    "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:vidproc-webhooks"
                },
                "BatchSize": 1,
            },
        }
    }
    sweeper = function("app.sweep_stuck_jobs", 120, 512)
    sweeper["Properties"]["Events"] = {
        f"{_sweeper_function()}Event": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    }
    preflight = {
        "type": "mock",
        "responses": {
            "default": {
                "statusCode": "200",
                "responseParameters": {
                    "method.response.header.Access-Control-Allow-Origin": "'https://app.example.com'",
                    "method.response.header.Access-Control-Allow-Methods": "'GET,POST,OPTIONS'",
                },
            }
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            API_FUNCTION: function("app.app", chalice_stage()["lambda_timeout"], 512),
            _worker_function(): worker,
            _sweeper_function(): sweeper,
            "HandleTableChanges": function("app.handle_table_changes", 60, 512),
            "HandleNotifications": notifications,
            "HandleWebhookDeliveries": webhooks,
            "RestAPI": {
                "Type": "AWS::Serverless::Api",
                "Properties": {
                    "StageName": "api",
                    "DefinitionBody": {
                        "swagger": "2.0",
                        "paths": {"/jobs": {"options": {"x-amazon-apigateway-integration": preflight}}},
                    },
                },
            },
        },
    }


def test_r2_lifecycle_expires_the_segment_parts_prefix() -> None:
    from chalicelib.processing.segmented import segments_prefix

    rules = json.loads((INFRA / "r2-lifecycle.json").read_text())["Rules"]
    parts = [
        r
        for r in rules
        if r["Filter"]["Prefix"] and segments_prefix("ws", "job").startswith(r["Filter"]["Prefix"])
    ]
    assert len(parts) == 1 and parts[0]["Status"] == "Enabled"
    assert 1 <= parts[0]["Expiration"]["Days"] <= 7
    assert not "outputs/ws/job/attempt-1.mp4".startswith(parts[0]["Filter"]["Prefix"])  # results stay


def test_r2_aborts_unfinished_multipart_uploads_only_after_the_sweeper_would_have() -> None:
    # The sweeper aborts an upload left unfinished UPLOAD_MULTIPART_EXPIRY_SECONDS after it began and
    # fails its job with UPLOAD_EXPIRED; R2's own rule is the backstop (the sweeper down, an upload
    # whose job was never recorded), and must not discard an upload the job still waits for.
    from chalicelib.config import Settings

    rules = json.loads((INFRA / "r2-lifecycle.json").read_text())["Rules"]
    [abort] = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert abort["Status"] == "Enabled" and abort["Filter"]["Prefix"] == ""
    days = abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    assert days * 86400 > Settings().upload_multipart_expiry_seconds

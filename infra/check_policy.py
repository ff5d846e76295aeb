#!/usr/bin/env python3
"""Checks that the bridge's IAM policy in infra/queue.yaml is least privilege.

    python3 infra/check_policy.py [TEMPLATE]     (default: infra/queue.yaml; needs PyYAML)

The policy is the resource the BridgePolicyArn output refers to; the queue is the one the
QueueUrl output refers to. The policy must hold exactly one statement: Effect Allow,
Action exactly sqs:SendMessage and sqs:GetQueueAttributes, Resource exactly that queue's
ARN (!GetAtt Queue.Arn), with no wildcards, NotAction or NotResource. It may hold one
more, only for a customer-managed queue key: `!If [cond, statement, !Ref AWS::NoValue]`
whose statement allows exactly kms:GenerateDataKey and kms:Decrypt on the key the queue's
KmsMasterKeyId names (!Ref of the same parameter), with kms:ViaService SQS. Every queue must be
retained and named by a queue policy that denies requests without TLS. Prints every
problem found and exits 1 if there is any.
"""

import sys
from pathlib import Path

import yaml

# IAM action names are case-insensitive: compared in lower case, reported as written here.
CANONICAL_ACTIONS = {a.lower(): a for a in ("sqs:SendMessage", "sqs:GetQueueAttributes")}
EXPECTED_ACTIONS = set(CANONICAL_ACTIONS)
POLICY_TYPES = {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation's short tags into their long form."""


def _construct_tag(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Queue.Arn is ["Queue", "Arn"] in the long form.
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader


def as_list(value):
    return value if isinstance(value, list) else [value]


def referenced_resource(template, output):
    """The logical id an output's `!Ref X` (or `!GetAtt X.Arn`) names, or None."""
    value = (template.get("Outputs") or {}).get(output, {}).get("Value")
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    return None


def check(template):
    problems = []
    resources = template.get("Resources") or {}

    queue_id = referenced_resource(template, "QueueUrl")
    if not queue_id or resources.get(queue_id, {}).get("Type") != "AWS::SQS::Queue":
        return [f"the QueueUrl output must be !Ref of an AWS::SQS::Queue, got {queue_id!r}"]
    policy_id = referenced_resource(template, "BridgePolicyArn")
    policy = resources.get(policy_id, {}) if policy_id else {}
    if policy.get("Type") not in POLICY_TYPES:
        return [
            "the BridgePolicyArn output must be !Ref of an IAM policy resource "
            f"({' or '.join(sorted(POLICY_TYPES))}), got {policy_id!r}"
        ]

    document = (policy.get("Properties") or {}).get("PolicyDocument") or {}
    where = f"{policy_id}.PolicyDocument"
    if document.get("Version") != "2012-10-17":
        problems.append(f"{where}: Version must be \"2012-10-17\", got {document.get('Version')!r}")
    statements = as_list(document.get("Statement") or [])
    conditional = [s for s in statements if isinstance(s, dict) and "Fn::If" in s]
    statements = [s for s in statements if not (isinstance(s, dict) and "Fn::If" in s)]
    memory = [s for s in conditional if is_memory_statement(s)]
    kms = [s for s in conditional if not is_memory_statement(s)]
    problems += [f"{where}: {p}" for p in kms_statements(kms, resources.get(queue_id, {}))]
    problems += [f"{where}: {p}" for p in memory_statements(memory, resources)]
    if len(statements) != 1:
        problems.append(f"{where}: must have exactly one statement, has {len(statements)}")

    expected_resource = {"Fn::GetAtt": [queue_id, "Arn"]}
    for i, statement in enumerate(statements):
        at = f"{where}.Statement[{i}]"
        if not isinstance(statement, dict):
            problems.append(f"{at}: is not a statement: {statement!r}")
            continue
        if statement.get("Effect") != "Allow":
            problems.append(f"{at}: Effect must be Allow, got {statement.get('Effect')!r}")
        for key in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
            if key in statement:
                problems.append(f"{at}: must not use {key}")

        actions = as_list(statement.get("Action", []))
        bad = [a for a in actions if not isinstance(a, str)]
        if bad:
            problems.append(f"{at}: Action must be plain strings, got {bad!r}")
        names = [a for a in actions if isinstance(a, str)]
        wild = [a for a in names if "*" in a or "?" in a]
        if wild:
            problems.append(f"{at}: Action has wildcards: {wild}")
        got = {a.lower() for a in names}
        if got != EXPECTED_ACTIONS or len(names) != len(got):
            extra = sorted(a for a in names if a.lower() not in EXPECTED_ACTIONS)
            missing = sorted(CANONICAL_ACTIONS[a] for a in EXPECTED_ACTIONS - got)
            problems.append(
                f"{at}: Action must be exactly sqs:SendMessage and sqs:GetQueueAttributes"
                + (f"; not allowed: {extra}" if extra else "")
                + (f"; missing: {missing}" if missing else "")
                + ("; duplicated entries" if len(names) != len(got) else "")
            )

        targets = as_list(statement.get("Resource", []))
        if targets != [expected_resource]:
            problems.append(
                f"{at}: Resource must be only the queue's ARN (!GetAtt {queue_id}.Arn), "
                f"got {targets!r}"
            )
        if any(isinstance(t, str) and ("*" in t or "?" in t) for t in targets):
            problems.append(f"{at}: Resource has wildcards")
    problems += tls_only(resources)
    # Deleting the stack, or an update that replaces a queue, must not delete the events
    # still in it.
    for name, resource in resources.items():
        if resource.get("Type") == "AWS::SQS::Queue":
            for key in ("DeletionPolicy", "UpdateReplacePolicy"):
                if resource.get(key) != "Retain":
                    problems.append(f"{name}: {key} must be Retain, so queued events outlive the stack")
    return problems


KMS_ACTIONS = {"kms:generatedatakey", "kms:decrypt"}
MEMORY_ACTIONS = {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:updateitem"}


def is_memory_statement(conditional):
    branches = conditional["Fn::If"]
    statement = branches[1] if isinstance(branches, list) and len(branches) == 3 else {}
    actions = as_list(statement.get("Action", [])) if isinstance(statement, dict) else []
    return any(isinstance(a, str) and a.lower().startswith("dynamodb:") for a in actions)


def memory_statements(conditional, resources):
    """The optional event-memory statement: at most one, conditional, exactly the three
    item calls the bridge makes, on the template's own table only."""
    if not conditional:
        return []
    if len(conditional) > 1:
        return [f"at most one event-memory statement, has {len(conditional)}"]
    branches = conditional[0]["Fn::If"]
    if branches[2] != {"Ref": "AWS::NoValue"}:
        return ["the event-memory statement must be !If [condition, statement, !Ref AWS::NoValue]"]
    statement = branches[1]
    problems = []
    if statement.get("Effect") != "Allow":
        problems.append("the event-memory statement's Effect must be Allow")
    for banned in ("NotAction", "NotResource", "NotPrincipal", "Principal", "Condition"):
        if banned in statement:
            problems.append(f"the event-memory statement must not use {banned}")
    actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
    if {a.lower() for a in actions} != MEMORY_ACTIONS or len(actions) != 3:
        problems.append("the event-memory statement must allow exactly dynamodb:GetItem, "
                        f"PutItem and UpdateItem, got {actions!r}")
    targets = as_list(statement.get("Resource", []))
    table = targets[0].get("Fn::GetAtt", [None])[0] if len(targets) == 1 and isinstance(targets[0], dict) else None
    if not (table and resources.get(table, {}).get("Type") == "AWS::DynamoDB::Table"
            and targets[0] == {"Fn::GetAtt": [table, "Arn"]}):
        problems.append(f"the event-memory statement's Resource must be only the table's ARN, got {targets!r}")
    return problems


def kms_statements(conditional, queue):
    """The optional queue-key statement: at most one, conditional, exactly the two KMS
    actions on the queue's own key, through SQS only."""
    if not conditional:
        return []
    if len(conditional) > 1:
        return [f"at most one conditional statement (the queue key's), has {len(conditional)}"]
    branches = conditional[0]["Fn::If"]
    if not (isinstance(branches, list) and len(branches) == 3
            and branches[2] == {"Ref": "AWS::NoValue"} and isinstance(branches[1], dict)):
        return ["the conditional statement must be !If [condition, statement, !Ref AWS::NoValue]"]
    statement = branches[1]
    problems = []
    key = (queue.get("Properties") or {}).get("KmsMasterKeyId")
    key_ref = None
    if isinstance(key, dict) and "Fn::If" in key and isinstance(key["Fn::If"], list):
        key_ref = key["Fn::If"][1]
    if not (isinstance(key_ref, dict) and "Ref" in key_ref):
        problems.append("a KMS statement needs the queue's KmsMasterKeyId to be !If [c, !Ref KEY, ...]")
    if statement.get("Effect") != "Allow":
        problems.append("the KMS statement's Effect must be Allow")
    for banned in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
        if banned in statement:
            problems.append(f"the KMS statement must not use {banned}")
    actions = as_list(statement.get("Action", []))
    if {a.lower() for a in actions if isinstance(a, str)} != KMS_ACTIONS or len(actions) != 2:
        problems.append(f"the KMS statement must allow exactly kms:GenerateDataKey and kms:Decrypt, got {actions!r}")
    if as_list(statement.get("Resource", [])) != [key_ref]:
        problems.append(f"the KMS statement's Resource must be the queue's key ({key_ref!r}), got {statement.get('Resource')!r}")
    via = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("kms:ViaService")
    if not (isinstance(via, dict) and "sqs." in str(via.get("Fn::Sub", ""))):
        problems.append("the KMS statement must be limited to SQS (kms:ViaService sqs.REGION.amazonaws.com)")
    return problems


def tls_only(resources):
    """Every queue is named by a queue policy whose statement denies every SQS action on it
    without TLS; queue policies grant nothing (the bridge's access is its IAM policy)."""
    problems = []
    covered = set()
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::SQS::QueuePolicy":
            continue
        properties = resource.get("Properties") or {}
        queues = {q["Ref"] for q in as_list(properties.get("Queues") or [])
                  if isinstance(q, dict) and "Ref" in q}
        for i, st in enumerate(as_list((properties.get("PolicyDocument") or {}).get("Statement") or [])):
            if not isinstance(st, dict) or st.get("Effect") != "Deny":
                problems.append(f"{name}.Statement[{i}]: a queue policy may only deny")
                continue
            insecure = (st.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport")
            if st.get("Principal") != "*" or insecure not in ("false", False):
                continue
            if as_list(st.get("Action", [])) != ["sqs:*"]:
                problems.append(f"{name}.Statement[{i}]: the TLS deny must cover sqs:*")
                continue
            arns = {r["Fn::GetAtt"][0] for r in as_list(st.get("Resource", []))
                    if isinstance(r, dict) and "Fn::GetAtt" in r and r["Fn::GetAtt"][1:] == ["Arn"]}
            covered |= queues & arns
    problems += [
        f"{name}: no queue policy denies every SQS action on it without TLS (aws:SecureTransport false)"
        for name, resource in resources.items()
        if resource.get("Type") == "AWS::SQS::Queue" and name not in covered
    ]
    return problems


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("queue.yaml")
    try:
        template = load(path)
    except (OSError, yaml.YAMLError) as e:
        print(f"check_policy: can't read {path}: {e}", file=sys.stderr)
        return 1
    problems = check(template)
    if problems:
        print(f"check_policy: {path}: the bridge's IAM policy is not least privilege, or a queue is not retained or not TLS-only:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"check_policy: {path}: bridge policy allows only sqs:SendMessage and "
          "sqs:GetQueueAttributes on the queue's ARN (and, with the event memory, three "
          "item calls on its table); queues are retained and TLS-only")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env bash
# Creates or updates the queue stack (infra/queue.yaml) on LocalStack or AWS, and prints
# the queue URL on standard output (progress goes to standard error).
#
#   infra/deploy.sh --target localstack|aws --stack NAME [--param Key=Value ...] [--outputs]
#
#   --target localstack   deploy to the LocalStack at $LOCALSTACK_ENDPOINT
#                         (default http://127.0.0.1:4566), with its test credentials
#   --target aws          deploy with the standard AWS chain (AWS_PROFILE, AWS_REGION, ...)
#   --stack NAME          the CloudFormation stack name
#   --param Key=Value     a template parameter (QueueName, MessageRetentionSeconds,
#                         VisibilityTimeoutSeconds, MaxReceiveCount,
#                         DeadLetterRetentionSeconds, HighThroughput); repeatable
#   --outputs             print every stack output as Key=Value instead of the URL only
#
# The same template is deployed to both targets. The aws CLI comes from PATH, or from
# the LocalStack venv that infra/localstack.sh installs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="$repo/infra/queue.yaml"
target="" stack="" all_outputs=0
params=()

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:-}"; shift 2 ;;
    --stack) stack="${2:-}"; shift 2 ;;
    --param) params+=("${2:-}"); shift 2 ;;
    --template) template="${2:-}"; shift 2 ;;
    --outputs) all_outputs=1; shift ;;
    -h | --help) usage ;;
    *) echo "deploy.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$stack" ] || { echo "deploy.sh: --stack is required" >&2; usage; }

aws_cli=(aws)
case "$target" in
  localstack)
    endpoint="${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}"
    venv_aws="${BRIDGE_TOOLS_DIR:-$repo/.tools}/localstack-venv/bin/aws"
    [ -x "$venv_aws" ] && aws_cli=("$venv_aws")
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
    aws_cli+=(--endpoint-url "$endpoint" --region "$AWS_DEFAULT_REGION")
    ;;
  aws)
    command -v aws >/dev/null || { echo "deploy.sh: the aws CLI is needed (pip install awscli)" >&2; exit 1; }
    ;;
  *) echo "deploy.sh: --target must be localstack or aws" >&2; usage ;;
esac
aws() { "${aws_cli[@]}" "$@"; }
log() { printf '[deploy] %s\n' "$*" >&2; }

param_args=()
for p in "${params[@]+"${params[@]}"}"; do
  key="${p%%=*}" value="${p#*=}"
  [ "$key" != "$p" ] || { echo "deploy.sh: --param wants Key=Value, got $p" >&2; exit 2; }
  param_args+=("ParameterKey=$key,ParameterValue=$value")
done

status() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE
}

current="$(status)"
if [ "$current" = "ROLLBACK_COMPLETE" ]; then
  # A stack whose creation failed can't be updated; it has no resources left to keep.
  log "stack $stack is ROLLBACK_COMPLETE from a failed create; deleting it first"
  aws cloudformation delete-stack --stack-name "$stack"
  aws cloudformation wait stack-delete-complete --stack-name "$stack"
  current=NONE
fi

common=(--stack-name "$stack" --template-body "file://$template" --capabilities CAPABILITY_IAM)
[ ${#param_args[@]} -gt 0 ] && common+=(--parameters "${param_args[@]}")
if [ "$current" = "NONE" ]; then
  log "creating stack $stack ($target)"
  aws cloudformation create-stack "${common[@]}" >/dev/null
else
  log "updating stack $stack ($target, now $current)"
  if ! out="$(aws cloudformation update-stack "${common[@]}" 2>&1)"; then
    if grep -q "No updates are to be performed" <<<"$out"; then
      log "no changes"
    else
      echo "$out" >&2
      exit 1
    fi
  fi
fi

# Poll rather than `aws cloudformation deploy`/`wait`, whose own polling adds ~30 s.
deadline=$((SECONDS + ${DEPLOY_TIMEOUT_S:-900}))
while :; do
  current="$(status)"
  case "$current" in
    CREATE_COMPLETE | UPDATE_COMPLETE) break ;;
    *ROLLBACK* | *FAILED*)
      log "stack $stack ended $current; events:"
      aws cloudformation describe-stack-events --stack-name "$stack" \
        --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId,ResourceStatusReason]' \
        --output text >&2 || true
      exit 1
      ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || { log "timed out waiting for $stack ($current)"; exit 1; }
  sleep 1
done
log "stack $stack is $current"

if [ "$all_outputs" = 1 ]; then
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text | tr '\t' '='
else
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='QueueUrl'].OutputValue" --output text
fi

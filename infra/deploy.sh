#!/usr/bin/env bash
# Creates or updates the queue stack (infra/queue.yaml) on LocalStack or AWS, and prints
# the queue URL on standard output (progress goes to standard error). On AWS it can also
# deploy the service stack (infra/service.yaml: ECS Fargate behind an HTTPS load
# balancer), wired to the queue stack's outputs.
#
#   infra/deploy.sh --target localstack|aws --stack NAME [--param Key=Value ...]
#                   [--allow-queue-replacement] [--template FILE]
#                   [--service-stack NAME [--param-service Key=Value ...]
#                   [--restart-service]] [--outputs]
#
#   --target localstack   deploy to the LocalStack at $LOCALSTACK_ENDPOINT
#                         (default http://127.0.0.1:4566), with its test credentials
#   --target aws          deploy with the standard AWS chain (AWS_PROFILE, AWS_REGION, ...)
#   --stack NAME          the queue stack's name
#   --param Key=Value     a queue template parameter (QueueName, MessageRetentionSeconds,
#                         VisibilityTimeoutSeconds, MaxReceiveCount,
#                         DeadLetterRetentionSeconds, HighThroughput,
#                         BacklogAgeAlarmSeconds, AlarmTopicArn);
#                         repeatable
#   --service-stack NAME  after the queue stack, deploy infra/service.yaml as stack NAME
#                         (--target aws only: LocalStack's community edition has no ECS or
#                         load balancers). Its QueueUrl and BridgePolicyArn parameters come
#                         from the queue stack's outputs unless given below.
#   --param-service Key=Value
#                         a service template parameter (ContainerImage, CertificateArn,
#                         VpcId, LoadBalancerSubnetIds=subnet-a,subnet-b, ServiceSubnetIds,
#                         SharedSecretsSecretArn, ApiKeysSecretArn, EventSetupId, ...: see
#                         infra/service.yaml); repeatable
#   --restart-service     after the service stack, start new tasks and wait until the old
#                         ones are gone (ECS force-new-deployment), even when no parameter
#                         changed. ECS reads the secrets only when a task starts, so a new
#                         shared secret or API key put into Secrets Manager is accepted
#                         only after this: see "Rotating a secret" in the README. Waits
#                         with the aws CLI's services-stable waiter (about 10 minutes at
#                         most), then exits 1 unless that deployment completed (a circuit
#                         breaker rollback also ends "stable")
#   --allow-queue-replacement
#                         let a new QueueName replace the queue of an existing stack. Without
#                         it that is refused: running bridges keep sending to the old queue
#                         (their policy then no longer allows it) until the service has been
#                         redeployed. The old queue is retained, with its events
#   --template FILE       deploy FILE instead of infra/queue.yaml as the --stack stack
#   --outputs             print every output (of both stacks) as Key=Value instead of the
#                         queue URL, or of the webhook URL when --service-stack is given
#
# Updating a stack: a parameter that is not given keeps the stack's current value (as
# `aws cloudformation deploy` does); one the stack doesn't have yet takes its default.
# DEPLOY_TIMEOUT_S bounds the wait for each stack (default 900 s, 1800 s for the service).
#
# The aws CLI comes from the LocalStack venv that infra/localstack.sh installs (for
# --target localstack, when present), else from PATH.
#
# Example (AWS):
#   infra/deploy.sh --target aws --stack bridge-queue --param QueueName=webhook-events \
#     --service-stack bridge-service \
#     --param-service ContainerImage=123456789012.dkr.ecr.eu-west-1.amazonaws.com/bridge:1.0.0 \
#     --param-service CertificateArn=arn:aws:acm:eu-west-1:123456789012:certificate/abc \
#     --param-service VpcId=vpc-0123 --param-service LoadBalancerSubnetIds=subnet-a,subnet-b \
#     --param-service ServiceSubnetIds=subnet-c,subnet-d \
#     --param-service SharedSecretsSecretArn=arn:aws:secretsmanager:eu-west-1:123456789012:secret:bridge-hmac-AbCdEf
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="$repo/infra/queue.yaml"
service_template="$repo/infra/service.yaml"
target="" stack="" service_stack="" all_outputs=0 restart_service=0 allow_replacement=0
params=() service_params=()

usage() { sed -n '2,/^[^#]/{/^#/p;}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:-}"; shift 2 ;;
    --stack) stack="${2:-}"; shift 2 ;;
    --param) params+=("${2:-}"); shift 2 ;;
    --service-stack) service_stack="${2:-}"; shift 2 ;;
    --param-service) service_params+=("${2:-}"); shift 2 ;;
    --template) template="${2:-}"; shift 2 ;;
    --outputs) all_outputs=1; shift ;;
    --restart-service) restart_service=1; shift ;;
    --allow-queue-replacement) allow_replacement=1; shift ;;
    -h | --help) usage ;;
    *) echo "deploy.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$stack" ] || { echo "deploy.sh: --stack is required" >&2; usage; }
if [ ${#service_params[@]} -gt 0 ] && [ -z "$service_stack" ]; then
  echo "deploy.sh: --param-service needs --service-stack" >&2
  exit 2
fi
if [ "$restart_service" = 1 ] && [ -z "$service_stack" ]; then
  echo "deploy.sh: --restart-service needs --service-stack" >&2
  exit 2
fi

aws_cli=(aws)
case "$target" in
  localstack)
    [ -z "$service_stack" ] || {
      echo "deploy.sh: --service-stack needs --target aws (LocalStack has no ECS or ELBv2)" >&2
      exit 2
    }
    endpoint="${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}"
    venv_aws="${BRIDGE_TOOLS_DIR:-$repo/.tools}/localstack-venv/bin/aws"
    [ -x "$venv_aws" ] && aws_cli=("$venv_aws")
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
    aws_cli+=(--endpoint-url "$endpoint" --region "$AWS_DEFAULT_REGION")
    poll_s=1
    ;;
  aws)
    poll_s=5
    ;;
  *) echo "deploy.sh: --target must be localstack or aws" >&2; usage ;;
esac
command -v "${aws_cli[0]}" >/dev/null || { echo "deploy.sh: the aws CLI is needed (pip install awscli)" >&2; exit 1; }
# `command`: with aws_cli=(aws), a plain call would run this function again.
aws() { command "${aws_cli[@]}" "$@"; }
log() { printf '[deploy] %s\n' "$*" >&2; }

# A JSON string literal (the values are ARNs, ids and names: no control characters
# other than tab or newline are expected).
json_string() {
  local s="$1"
  s="${s//\\/\\\\}" s="${s//\"/\\\"}" s="${s//$'\t'/\\t}" s="${s//$'\n'/\\n}"
  printf '"%s"' "$s"
}

status() { # STACK
  aws cloudformation describe-stacks --stack-name "$1" \
    --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE
}

outputs() { # STACK: every output as Key=Value
  aws cloudformation describe-stacks --stack-name "$1" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text | tr '\t' '='
}

# deploy_stack STACK TEMPLATE TIMEOUT_S [Key=Value ...]: create or update, then wait.
deploy_stack() {
  local stack="$1" template="$2" timeout_s="$3"
  shift 3
  local given=() items=() p key value current
  for p in "$@"; do
    key="${p%%=*}" value="${p#*=}"
    [ "$key" != "$p" ] && [ -n "$key" ] || { echo "deploy.sh: a parameter wants Key=Value, got $p" >&2; exit 2; }
    given+=("$key")
    items+=("{\"ParameterKey\":$(json_string "$key"),\"ParameterValue\":$(json_string "$value")}")
  done

  current="$(status "$stack")"
  if [ "$current" = "ROLLBACK_COMPLETE" ]; then
    # A stack whose creation failed can't be updated; delete it (queues it made are
    # retained, outside the stack).
    log "stack $stack is ROLLBACK_COMPLETE from a failed create; deleting it first"
    aws cloudformation delete-stack --stack-name "$stack"
    aws cloudformation wait stack-delete-complete --stack-name "$stack"
    current=NONE
  fi

  if [ "$current" != "NONE" ] && [ "$allow_replacement" = 0 ]; then
    # A new QueueName replaces the queue: refused unless asked for (see the usage).
    local old_name new_name=""
    old_name="$(aws cloudformation describe-stacks --stack-name "$stack" \
      --query "Stacks[0].Parameters[?ParameterKey=='QueueName'].ParameterValue | [0]" --output text)"
    for p in "$@"; do [ "${p%%=*}" = QueueName ] && new_name="${p#*=}"; done
    if [ -n "$new_name" ] && [ "$old_name" != "None" ] && [ "$new_name" != "$old_name" ]; then
      echo "deploy.sh: stack $stack's queue is $old_name; QueueName=$new_name would replace it" \
        "while running bridges still send to the old one. Give --allow-queue-replacement" \
        "to do it anyway (then redeploy the service at once), or deploy a new stack." >&2
      exit 2
    fi
  fi

  if [ "$current" != "NONE" ]; then
    # Keep the current value of each parameter that was not given and that both the
    # stack and the (possibly changed) template have.
    local in_stack in_template k
    in_stack=" $(aws cloudformation describe-stacks --stack-name "$stack" \
      --query 'Stacks[0].Parameters[].ParameterKey' --output text | tr -s '\t\n' '  ') "
    in_template="$(aws cloudformation get-template-summary --template-body "file://$template" \
      --query 'Parameters[].ParameterKey' --output text | tr -s '\t\n' '  ')"
    for k in $in_template; do
      [[ "$in_stack" == *" $k "* ]] || continue
      [[ " ${given[*]-} " == *" $k "* ]] && continue
      items+=("{\"ParameterKey\":$(json_string "$k"),\"UsePreviousValue\":true}")
    done
  fi

  local common=(--stack-name "$stack" --template-body "file://$template" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND)
  if [ ${#items[@]} -gt 0 ]; then
    local joined
    joined="$(IFS=,; echo "${items[*]}")"
    common+=(--parameters "[$joined]")
  fi
  if [ "$current" = "NONE" ]; then
    log "creating stack $stack ($target, $(basename "$template"))"
    aws cloudformation create-stack "${common[@]}" >/dev/null
  else
    log "updating stack $stack ($target, $(basename "$template"), now $current)"
    local out
    if ! out="$(aws cloudformation update-stack "${common[@]}" 2>&1)"; then
      if grep -q "No updates are to be performed" <<<"$out"; then
        # Nothing to wait for; the stack keeps its state, which may be
        # UPDATE_ROLLBACK_COMPLETE from an earlier failed update (a working stack).
        log "no changes; stack $stack stays $current"
        return 0
      else
        echo "$out" >&2
        exit 1
      fi
    fi
  fi

  # Poll rather than `aws cloudformation deploy`/`wait`, whose own polling adds ~30 s.
  local deadline=$((SECONDS + timeout_s))
  while :; do
    current="$(status "$stack")"
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
    sleep "$poll_s"
  done
  log "stack $stack is $current"
}

deploy_stack "$stack" "$template" "${DEPLOY_TIMEOUT_S:-900}" "${params[@]+"${params[@]}"}"
queue_outputs="$(outputs "$stack")"

if [ -z "$service_stack" ]; then
  if [ "$all_outputs" = 1 ]; then
    echo "$queue_outputs"
  else
    sed -n 's/^QueueUrl=//p' <<<"$queue_outputs"
  fi
  exit 0
fi

# The service stack gets the queue stack's URL and policy unless they were given.
wired=()
for key in QueueUrl BridgePolicyArn; do
  if ! printf '%s\n' "${service_params[@]+"${service_params[@]}"}" | grep -q "^$key="; then
    value="$(sed -n "s/^$key=//p" <<<"$queue_outputs")"
    [ -n "$value" ] || { echo "deploy.sh: the queue stack $stack has no $key output" >&2; exit 1; }
    wired+=("$key=$value")
  fi
done
deploy_stack "$service_stack" "$service_template" "${DEPLOY_TIMEOUT_S:-1800}" \
  "${wired[@]+"${wired[@]}"}" "${service_params[@]+"${service_params[@]}"}"
service_outputs="$(outputs "$service_stack")"

if [ "$restart_service" = 1 ]; then
  cluster="$(sed -n 's/^ClusterName=//p' <<<"$service_outputs")"
  service="$(sed -n 's/^ServiceName=//p' <<<"$service_outputs")"
  [ -n "$cluster" ] && [ -n "$service" ] \
    || { echo "deploy.sh: the service stack $service_stack has no ClusterName/ServiceName output" >&2; exit 1; }
  log "restarting $service on $cluster: new tasks read the secrets again"
  deployment="$(aws ecs update-service --cluster "$cluster" --service "$service" --force-new-deployment \
    --query "service.deployments[?status=='PRIMARY'].id | [0]" --output text)"
  # Returns once the service is steady (it polls for up to 10 minutes, then fails). That
  # is also so after the circuit breaker rolled a failed deployment back (new tasks that
  # could not start, e.g. a secret they can't read), so the deployment's own state decides.
  aws ecs wait services-stable --cluster "$cluster" --services "$service"
  outcome="$(aws ecs describe-services --cluster "$cluster" --services "$service" \
    --query "services[0].deployments[?id=='$deployment'] | [0].[status, rolloutState]" --output text)"
  if [ "$outcome" != "$(printf 'PRIMARY\tCOMPLETED')" ]; then
    log "deployment $deployment of $service did not complete ($outcome): the old tasks may still serve; see the service's events"
    exit 1
  fi
  log "$service is stable on deployment $deployment: every task started after this run"
fi

if [ "$all_outputs" = 1 ]; then
  printf '%s\n%s\n' "$queue_outputs" "$service_outputs"
else
  sed -n 's/^WebhookUrl=//p' <<<"$service_outputs"
fi

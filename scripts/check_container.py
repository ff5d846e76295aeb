#!/usr/bin/env python3
"""Static checks of Dockerfile, .dockerignore and compose.yaml (no Docker engine needed).

    python3 scripts/check_container.py [REPO_DIR]      (needs PyYAML)

Prints every problem found and exits 1 if there is any.
"""

import re
import sys
from pathlib import Path

import yaml

LOCALSTACK_SERVICES = {"sqs", "cloudformation", "iam", "sts", "s3", "cloudwatch"}


def dockerfile_instructions(text):
    """(INSTRUCTION, arguments) pairs, with continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
        current = ""
    if current.strip():
        word, _, rest = current.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def check_dockerfile(repo):
    """(problems, number of stages)."""
    problems = []
    path = repo / "Dockerfile"
    try:
        instructions = dockerfile_instructions(path.read_text(encoding="utf-8"))
    except OSError as e:
        return [f"Dockerfile: can't read: {e}"], 0
    stages, stage = [], None
    for word, rest in instructions:
        if word == "FROM":
            stage = {"from": rest, "items": []}
            stages.append(stage)
        elif stage is None:
            if word != "ARG":
                problems.append(f"Dockerfile: {word} before the first FROM")
        else:
            stage["items"].append((word, rest))
    if len(stages) < 2:
        problems.append(f"Dockerfile: wants a multi-stage build, has {len(stages)} FROM")
        if not stages:
            return problems, 0
    builder, final = stages[0], stages[-1]
    builder_runs = " ".join(r for w, r in builder["items"] if w == "RUN")
    if not re.search(r"cargo build\b[^&;]*--release", builder_runs) or "--locked" not in builder_runs:
        problems.append("Dockerfile: the first stage must run `cargo build --release --locked`")
    if not builder["from"].startswith("rust:"):
        problems.append(f"Dockerfile: the build stage should be FROM rust:..., is {builder['from']!r}")

    items = final["items"]
    users = [r for w, r in items if w == "USER"]
    if not users:
        problems.append("Dockerfile: the final stage has no USER (it would run as root)")
    else:
        user = users[-1].split(":", 1)[0].strip()
        if user in ("root", "0", ""):
            problems.append(f"Dockerfile: the final stage's USER is root ({users[-1]!r})")
    healthchecks = [r for w, r in items if w == "HEALTHCHECK"]
    if not healthchecks or healthchecks[-1].upper().startswith("NONE"):
        problems.append("Dockerfile: the final stage has no HEALTHCHECK")
    elif "/healthz" not in healthchecks[-1] and not re.search(
        r"webhook-sqs-bridge\W+healthcheck\b(?!\W+--ready)", healthchecks[-1]
    ):
        problems.append("Dockerfile: the HEALTHCHECK should probe /healthz "
                        "(or run `webhook-sqs-bridge healthcheck`, without --ready)")
    else:
        # The final image has only what the stage installs: the probe's tool must be there.
        tool = next((t for t in ("curl", "wget") if t in healthchecks[-1]), None)
        installs = " ".join(r for w, r in items if w == "RUN")
        if tool and not re.search(rf"install\b[^&;]*\b{tool}\b", installs):
            problems.append(f"Dockerfile: HEALTHCHECK uses {tool}, which the final stage doesn't install")
    exposed = {p.split("/")[0] for w, r in items if w == "EXPOSE" for p in r.split()}
    if "8080" not in exposed:
        problems.append("Dockerfile: the final stage must EXPOSE 8080")
    if not any(w == "ENTRYPOINT" and "webhook-sqs-bridge" in r for w, r in items):
        problems.append("Dockerfile: ENTRYPOINT must run the webhook-sqs-bridge binary")
    if not any(w == "COPY" and "--from=" in r for w, r in items):
        problems.append("Dockerfile: the final stage must COPY the binary --from the build stage")
    if not any(w == "ENV" and "BRIDGE_LISTEN=0.0.0.0:8080" in r for w, r in items):
        problems.append("Dockerfile: the final stage must default BRIDGE_LISTEN=0.0.0.0:8080")

    try:
        ignored = {
            line.strip().strip("/")
            for line in (repo / ".dockerignore").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        }
    except OSError:
        ignored = set()
    missing = sorted({"target", ".tools", ".git"} - ignored)
    if missing:
        problems.append(f".dockerignore: should leave out {', '.join(missing)}")
    return problems, len(stages)


def env_of(service):
    """A service's environment as a dict, from either of compose's two forms."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def interpolate(value):
    """Compose's ${NAME:-default} / ${NAME-default} with the defaults (the environment is
    not consulted, so the check does not depend on it); $$ is a literal $."""
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value or "")
    return value.replace("$$", "$")


def condition(service, dependency):
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return "service_started" if dependency in deps else None
    spec = deps.get(dependency)
    if spec is None:
        return None
    return (spec or {}).get("condition", "service_started")


def check_compose(repo):
    problems = []
    try:
        compose = yaml.safe_load((repo / "compose.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        return [f"compose.yaml: can't read: {e}"]
    services = (compose or {}).get("services") or {}
    for name in ("localstack", "provision", "bridge"):
        if name not in services:
            problems.append(f"compose.yaml: no `{name}` service")
    if problems:
        return problems
    localstack, provision, bridge = (services[n] for n in ("localstack", "provision", "bridge"))

    # localstack
    image = localstack.get("image", "")
    if not image.startswith("localstack/localstack:") or image.endswith(":latest"):
        problems.append(f"compose.yaml: localstack wants a pinned localstack/localstack image, has {image!r}")
    health = localstack.get("healthcheck") or {}
    test = health.get("test")
    test_text = " ".join(test) if isinstance(test, list) else str(test or "")
    if "/_localstack/health" not in test_text:
        problems.append("compose.yaml: localstack needs a healthcheck on /_localstack/health")
    env = env_of(localstack)
    services_env = {s.strip() for s in (env.get("SERVICES") or "").split(",") if s.strip()}
    if not LOCALSTACK_SERVICES <= services_env:
        problems.append(f"compose.yaml: localstack SERVICES lacks {sorted(LOCALSTACK_SERVICES - services_env)}")
    if env.get("LOCALSTACK_HOST") != "localstack:4566":
        problems.append("compose.yaml: localstack needs LOCALSTACK_HOST=localstack:4566 (queue URL host)")
    if env.get("SQS_ENDPOINT_STRATEGY") != "off":
        problems.append("compose.yaml: localstack needs SQS_ENDPOINT_STRATEGY=off (path-style queue URLs)")

    # provision
    if condition(provision, "localstack") != "service_healthy":
        problems.append("compose.yaml: provision must depend on localstack with condition service_healthy")
    command = provision.get("command") or ""
    command_text = " ".join(command) if isinstance(command, list) else str(command)
    if "infra/deploy.sh" not in command_text or "--target localstack" not in command_text:
        problems.append("compose.yaml: provision must run infra/deploy.sh --target localstack")
    if "awscli" not in command_text and "aws-cli" not in str(provision.get("image", "")):
        problems.append("compose.yaml: provision must install the aws CLI (deploy.sh needs it on PATH)")
    volumes = [str(v) for v in provision.get("volumes") or []]
    if not any(v.startswith("./infra:") for v in volumes):
        problems.append("compose.yaml: provision must mount ./infra")
    penv = env_of(provision)
    if penv.get("LOCALSTACK_ENDPOINT") != "http://localstack:4566":
        problems.append("compose.yaml: provision needs LOCALSTACK_ENDPOINT=http://localstack:4566")

    # bridge
    build = bridge.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    if context not in (".", "./"):
        problems.append(f"compose.yaml: bridge must build from . (the Dockerfile), has {build!r}")
    if condition(bridge, "provision") != "service_completed_successfully":
        problems.append(
            "compose.yaml: bridge must depend on provision with condition service_completed_successfully"
        )
    benv = env_of(bridge)
    queue_url = interpolate(benv.get("BRIDGE_QUEUE_URL"))
    if not re.fullmatch(r"http://localstack:4566/000000000000/[A-Za-z0-9_-]+\.fifo", queue_url):
        problems.append(f"compose.yaml: bridge BRIDGE_QUEUE_URL is not LocalStack's FIFO queue URL: {queue_url!r}")
    expected = interpolate(penv.get("EXPECTED_QUEUE_URL"))
    if expected and expected != queue_url:
        problems.append(f"compose.yaml: provision expects {expected!r}, bridge uses {queue_url!r}")
    if benv.get("AWS_ENDPOINT_URL") != "http://localstack:4566":
        problems.append("compose.yaml: bridge needs AWS_ENDPOINT_URL=http://localstack:4566")
    for key in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if not benv.get(key):
            problems.append(f"compose.yaml: bridge needs {key}")
    if not (benv.get("BRIDGE_SHARED_SECRETS") or benv.get("BRIDGE_API_KEYS")):
        problems.append("compose.yaml: bridge needs BRIDGE_SHARED_SECRETS or BRIDGE_API_KEYS")
    ports = [interpolate(str(p)) for p in bridge.get("ports") or []]
    if not any(p.split(":")[-1].split("/")[0] == "8080" for p in ports):
        problems.append("compose.yaml: bridge must publish container port 8080")
    return problems


def main(argv):
    repo = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    docker_problems, stages = check_dockerfile(repo)
    problems = docker_problems + check_compose(repo)
    if problems:
        print("check_container: problems found:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"check_container: Dockerfile ok ({stages} stages, non-root USER, HEALTHCHECK, "
          "EXPOSE 8080); compose.yaml ok (localstack -> provision -> bridge)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

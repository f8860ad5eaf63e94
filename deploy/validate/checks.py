#!/usr/bin/env python3
"""Checks of the deployment files that no generic linter knows about.

Run by deploy/validate.sh inside its virtualenv (helm-python-sdk,
kubernetes-validate, PyYAML). Each sub-command prints what it checked and
every problem it found, and exits 1 if there was any problem:

  settings                   the configuration schema read from libs/config
  dockerfile                 deploy/Dockerfile keeps its contract
  compose                    deploy/compose: services, config TOML, env names
  chart-lint CHART           helm lint --strict, for each values scenario
  chart-render CHART OUT     render every scenario to OUT/<scenario>.yaml
  chart-negative CHART       bad values are refused at render time
  kube-schema OUT V [V...]   rendered objects against Kubernetes schemas
  chart-policy CHART OUT     hardening, wiring and secrets rules

The configuration schema is not copied here: it is read from the Rust
structs in libs/config/src/settings.rs (every section refuses unknown keys),
so the files are checked against what the services really accept.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
SETTINGS_RS = REPO / "libs" / "config" / "src" / "settings.rs"

# key in values.yaml -> (sub-command / object suffix, TOML section)
SERVICES = {
    "identityManager": ("identity-manager", "identity_manager"),
    "authnGateway": ("authn-gateway", "authn_gateway"),
    "otpService": ("otp-service", "otp_service"),
    "auditLog": ("audit-log", "audit_log"),
    "notification": ("notification", "notification"),
}
SUBCOMMANDS = {name for name, _ in SERVICES.values()} | {"migrate", "dev"}

# The values scenarios rendered and checked: name -> (release, values file).
SCENARIOS = {
    "default": ("spid-idp", None),
    "production": ("idp-prod", "ci/production-values.yaml"),
    "minimal": ("spid", "ci/minimal-values.yaml"),
}
NAMESPACE = "spid-idp"

# Values that must make rendering fail, and a piece of the expected message.
NEGATIVE = [
    ("plain-http public URL in production", {"config": {"publicUrl": "http://idp.example.org"}}, "must be https://"),
    ("malformed Kafka broker list", {"config": {"bus": {"brokers": "kafka:9092,kafka"}}}, "is not host:port"),
    (
        "credential in bus.properties",
        {"config": {"bus": {"properties": {"sasl.password": "hunter2"}}}},
        "credentials must not be in the ConfigMap",
    ),
    ("unknown service key", {"services": {"gateway": {"replicas": 1}}}, "additional properties"),
    ("unknown top-level value", {"ingres": {"enabled": True}}, "additional properties"),
    ("unknown gRPC client", {"networkPolicy": {"grpcClients": {"auditLog": ["adminTool"]}}}, "auditLog"),
    ("bad log format", {"config": {"telemetry": {"logFormat": "xml"}}}, "logFormat"),
]


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def finish(self, what: str) -> int:
        if self.items:
            for item in self.items:
                print(f"problem: {item}")
            print(f"{len(self.items)} problem(s) in {what}")
            return 1
        print(f"{what}: no problem")
        return 0


def note(message: str) -> None:
    print(message)


# ---------------------------------------------------------------------------
# The configuration schema, read from the Rust structs.
# ---------------------------------------------------------------------------

INTEGER_TYPES = {"u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize"}


def settings_schema() -> dict:
    """{key: ("table", {...}) | ("map", None) | (scalar type, None)}."""
    if not SETTINGS_RS.is_file():
        raise SystemExit(f"cannot read the configuration schema: {SETTINGS_RS} is missing")
    source = SETTINGS_RS.read_text()
    structs: dict[str, dict[str, str]] = {}
    for match in re.finditer(r"pub struct (\w+)\s*\{(.*?)\n\}", source, re.S):
        fields = {}
        for field in re.finditer(r"^\s*pub (\w+):\s*([^\n]+?),\s*$", match.group(2), re.M):
            fields[field.group(1)] = field.group(2).strip()
        structs[match.group(1)] = fields
    if "Settings" not in structs or not structs["Settings"]:
        raise SystemExit(f"cannot read the configuration schema: no `pub struct Settings` in {SETTINGS_RS}")

    def build(name: str, seen: tuple[str, ...]) -> dict:
        out = {}
        for field, rust_type in structs[name].items():
            inner = rust_type
            optional = re.fullmatch(r"Option<(.+)>", inner)
            if optional:
                inner = optional.group(1)
            if inner in structs and inner not in seen:
                out[field] = ("table", build(inner, seen + (inner,)))
            elif re.search(r"(BTree|Hash)Map<", inner):
                out[field] = ("map", None)
            elif inner == "String":
                out[field] = ("string", None)
            elif inner in INTEGER_TYPES:
                out[field] = ("integer", None)
            elif inner == "bool":
                out[field] = ("boolean", None)
            elif inner.startswith("Vec<"):
                out[field] = ("array", None)
            else:
                out[field] = ("any", None)
        return out

    return build("Settings", ("Settings",))


TOML_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "map": dict, "table": dict}


def check_config_data(data: dict, schema: dict, where: str, problems: Problems, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            problems.add(where, f"unknown setting `{dotted}` (the services refuse unknown keys)")
            continue
        kind, sub = schema[key]
        expected = TOML_TYPES.get(kind)
        if expected is not None:
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
            if not ok:
                problems.add(where, f"`{dotted}` should be a {kind}, found {type(value).__name__}")
                continue
        if kind == "table":
            check_config_data(value, sub, where, problems, dotted + ".")
        if kind == "map":
            for k, v in value.items():
                if not isinstance(v, str):
                    problems.add(where, f"`{dotted}.{k}` should be a string")


def env_setting(name: str) -> list[str] | None:
    """IDP__BUS__BROKERS -> ["bus", "brokers"]; None for other variables."""
    if not name.startswith("IDP__"):
        return None
    return name[len("IDP__"):].lower().split("__")


def check_env_name(name: str, schema: dict, where: str, problems: Problems) -> None:
    path = env_setting(name)
    if path is None:
        return
    node: dict | None = schema
    for i, part in enumerate(path):
        if node is None or part not in node:
            problems.add(where, f"environment variable {name} names no setting (`{'.'.join(path)}`)")
            return
        kind, sub = node[part]
        if kind == "map":
            return
        node = sub if kind == "table" else None
        if kind != "table" and i != len(path) - 1:
            problems.add(where, f"environment variable {name} goes below the scalar `{'.'.join(path[: i + 1])}`")
            return


def socket_addr(value: str) -> bool:
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})", value)
    return bool(match) and 0 <= int(match.group(2)) <= 65535


def check_resolves(
    data: dict, env: set[str], db_sections: list[str], where: str, problems: Problems
) -> None:
    """The rules of Settings::resolve that a deployment file can break, and
    a database for each service in `db_sections` (the process's own)."""
    mode = data.get("mode", "production")
    if mode not in ("production", "development", "dev"):
        problems.add(where, f"mode {mode!r} is not production or development")
    production = mode == "production"
    public_url = urlsplit(data.get("public_url", "http://127.0.0.1:8080"))
    if production and public_url.scheme != "https":
        problems.add(where, "public_url must be https:// in production")
    if data.get("telemetry", {}).get("log_format", "json") not in ("json", "text"):
        problems.add(where, "telemetry.log_format is not json or text")
    bus = data.get("bus", {})
    kafka = bus.get("kind", "") == "kafka" or (bus.get("kind", "") == "" and (production or bus.get("brokers")))
    if kafka:
        brokers = bus.get("brokers", "")
        if not brokers and "IDP__BUS__BROKERS" not in env:
            problems.add(where, "bus.brokers is required for the kafka bus")
        for broker in filter(None, (b.strip() for b in brokers.split(","))):
            if not re.fullmatch(r"[^:\s]+:\d{1,5}", broker):
                problems.add(where, f"bus.brokers: {broker!r} is not host:port")
    elif production:
        problems.add(where, "the embedded bus is development only")
    if production and not data.get("cache", {}).get("url") and "IDP__CACHE__URL" not in env:
        problems.add(where, "cache.url is required in production (file or IDP__CACHE__URL)")
    registration = data.get("registration", {})
    if not re.fullmatch(r"[A-Z]{4}", registration.get("idp_code", "XIDP")):
        problems.add(where, "registration.idp_code must be 4 upper-case letters")
    source_keys = ("agenzia_entrate_url", "scipafi_url", "document_registry_url")
    given = [
        k for k in source_keys if registration.get(k) or f"IDP__REGISTRATION__{k.upper()}" in env
    ]
    if production and "identity_manager" in db_sections and len(given) < len(source_keys):
        missing = ", ".join(f"registration.{k}" for k in source_keys if k not in given)
        problems.add(where, f"{missing}: required in production (the authoritative sources)")
    for k in source_keys:
        url = registration.get(k)
        if url and production and urlsplit(url).scheme != "https":
            problems.add(where, f"registration.{k} must be https:// in production")
    for _, section in SERVICES.values():
        svc = data.get(section, {})
        for key in ("grpc_listen", "http_listen"):
            if key not in svc:
                problems.add(where, f"{section}.{key} is not set (the default listens on 127.0.0.1 only)")
            elif not socket_addr(svc[key]):
                problems.add(where, f"{section}.{key} {svc[key]!r} is not a socket address")
        url = svc.get("grpc_url")
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.add(where, f"{section}.grpc_url {url!r} is not an http(s) URL with a host")
        if section not in db_sections:
            continue
        has_db = (
            svc.get("database_url")
            or data.get("database", {}).get("url")
            or f"IDP__{section.upper()}__DATABASE_URL" in env
            or "IDP__DATABASE__URL" in env
        )
        if production and not has_db:
            problems.add(where, f"no database for {section} (IDP__{section.upper()}__DATABASE_URL)")


SECRET_URL = re.compile(r"://[^/@\s]*:[^/@\s]+@")


def secrets_in_config(
    data: dict, where: str, problems: Problems, prefix: str = "", allowed: frozenset[str] = frozenset()
) -> None:
    """Credentials in a configuration file. `allowed`: URL settings that may
    be in the file as long as they carry no password."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            secrets_in_config(value, where, problems, dotted + ".", allowed)
            continue
        if dotted in allowed:
            pass
        elif dotted in ("database.url", "cache.url") or dotted.endswith(".database_url"):
            problems.add(where, f"`{dotted}` is a credential and must come from a Secret, not the file")
        if re.search(r"(password|secret|token|sasl\.username)", dotted, re.I):
            problems.add(where, f"`{dotted}` looks like a credential")
        if isinstance(value, str) and SECRET_URL.search(value):
            problems.add(where, f"`{dotted}` holds a URL with a password")


# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------


def cmd_settings(_: argparse.Namespace) -> int:
    problems = Problems()
    schema = settings_schema()
    sections = sorted(k for k, (kind, _) in schema.items() if kind == "table")
    note(f"read {SETTINGS_RS.relative_to(REPO)}: top-level keys {', '.join(sorted(schema))}")
    for _, section in SERVICES.values():
        if section not in sections:
            problems.add("settings.rs", f"no [{section}] section: the deployment files use it")
    for section, keys in (("database", {"max_connections", "connect_timeout_secs"}), ("bus", {"brokers"})):
        have = set(schema.get(section, ("table", {}))[1] or {})
        for key in keys - have:
            problems.add("settings.rs", f"no `{section}.{key}`: the deployment files use it")
    return problems.finish("configuration schema")


# ---------------------------------------------------------------------------
# dockerfile
# ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def cmd_dockerfile(_: argparse.Namespace) -> int:
    problems = Problems()
    path = REPO / "deploy" / "Dockerfile"
    where = "deploy/Dockerfile"
    instructions = dockerfile_instructions(path.read_text())
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args.setdefault(k, v)

    def expand(s: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)

    froms = [(i, expand(rest)) for i, (word, rest) in enumerate(instructions) if word == "FROM"]
    if len(froms) < 2:
        problems.add(where, "expected a multi-stage build (builder and runtime)")
        return problems.finish("Dockerfile contract")
    first, last = froms[0][1], froms[-1][1]
    if not re.match(r"rust:[\w.]+-bookworm\s+AS\s+builder", first, re.I):
        problems.add(where, f"first stage should be `rust:<version>-bookworm AS builder`, found `{first}`")
    if not re.match(r"debian:bookworm-slim(\s|$)", last):
        problems.add(where, f"runtime stage should be debian:bookworm-slim, found `{last}`")
    note(f"stages: {' -> '.join(f.split()[0] for _, f in froms)}")
    builder = instructions[froms[0][0] : froms[-1][0]]
    runtime = instructions[froms[-1][0] :]
    runs = " ".join(rest for word, rest in builder if word == "RUN")
    for needle, why in (
        ("--mount=type=cache,target=/usr/local/cargo/registry", "cargo registry cache mount"),
        ("--mount=type=cache,target=/src/target", "target directory cache mount"),
        ("cargo build --release --locked", "a locked release build"),
        ("-p idp ", "the idp binary"),
        ("-p idpctl", "the idpctl binary"),
    ):
        if needle not in runs + " ":
            problems.add(where, f"builder lacks {why} (`{needle.strip()}`)")
    runtime_runs = " ".join(rest for word, rest in runtime if word == "RUN")
    for package in ("libssl3", "ca-certificates"):
        if not re.search(rf"\b{re.escape(package)}\b", runtime_runs):
            problems.add(where, f"runtime does not install {package}")
    copies = [rest for word, rest in runtime if word == "COPY" and "--from=builder" in rest]
    if not any("idp" in c and "idpctl" in c and "/usr/local/bin" in c for c in copies):
        problems.add(where, "runtime does not copy idp and idpctl into /usr/local/bin")
    users = [rest for word, rest in runtime if word == "USER"]
    if not users:
        problems.add(where, "runtime has no USER (it would run as root)")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit() or int(user) == 0:
            problems.add(where, f"USER {users[-1]} should be a numeric non-root uid (Kubernetes runAsNonRoot)")
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    if not entry or json.loads(entry[-1]) != ["idp"]:
        problems.add(where, f'ENTRYPOINT should be ["idp"], found {entry[-1] if entry else "none"}')
    ignore = REPO / "deploy" / "Dockerfile.dockerignore"
    if not ignore.is_file():
        problems.add("deploy/Dockerfile.dockerignore", "missing (the build context would include target/)")
    else:
        patterns = {line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")}
        for needed in ("**/target", ".git"):
            if needed not in patterns:
                problems.add("deploy/Dockerfile.dockerignore", f"does not exclude {needed}")
        for kept in ("Cargo.toml", "Cargo.lock", "libs", "services", "proto"):
            if kept in patterns:
                problems.add("deploy/Dockerfile.dockerignore", f"excludes {kept}, which the build needs")
    members = re.search(r"members\s*=\s*\[(.*?)\]", (REPO / "Cargo.toml").read_text(), re.S)
    member_list = re.findall(r'"([^"]+)"', members.group(1)) if members else []
    if ignore.is_file():
        for member in member_list:
            if member in patterns or member.split("/")[0] in patterns:
                problems.add("deploy/Dockerfile.dockerignore", f"excludes workspace member {member}; cargo needs every member")
    for crate in ("services/idp", "services/idpctl"):
        if crate not in member_list:
            note(f"warning: {crate} is not a workspace member yet; `cargo build -p {crate.split('/')[-1]}` needs it")
    return problems.finish("Dockerfile contract")


# ---------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------


def cmd_compose(_: argparse.Namespace) -> int:
    problems = Problems()
    base = REPO / "deploy" / "compose"
    where = "deploy/compose/docker-compose.yaml"
    compose = yaml.safe_load((base / "docker-compose.yaml").read_text())
    schema = settings_schema()
    services = compose.get("services", {})
    volumes = set((compose.get("volumes") or {}).keys())

    config_path = base / "idp.toml"
    config = tomllib.loads(config_path.read_text())
    check_config_data(config, schema, "deploy/compose/idp.toml", problems)
    # A password-less local Redis URL may sit in the file; database URLs
    # carry a password and come from the environment, as on Kubernetes.
    secrets_in_config(config, "deploy/compose/idp.toml", problems, allowed=frozenset({"cache.url"}))
    note(f"idp.toml: {len(config)} top-level keys checked against settings.rs")

    expected = {"postgres", "redis", "kafka", "migrate"} | {name for name, _ in SERVICES.values()}
    for missing in sorted(expected - set(services)):
        problems.add(where, f"no `{missing}` service")

    databases = set(re.findall(r"CREATE DATABASE (\w+)", (base / "postgres-init.sql").read_text()))
    idp_services = {n: s for n, s in services.items() if "deploy/Dockerfile" in json.dumps(s.get("build", {}))}
    images = {s.get("image") for s in idp_services.values()}
    if len(images) != 1:
        problems.add(where, f"the idp services should share one image, found {sorted(map(str, images))}")
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}) or {}:
            if dep not in services:
                problems.add(where, f"{name} depends on unknown service {dep}")
        for vol in svc.get("volumes", []) or []:
            source = vol.split(":")[0]
            if not source.startswith((".", "/")) and source not in volumes:
                problems.add(where, f"{name} mounts undeclared volume {source}")
            if source.startswith("."):
                if not (base / source).exists():
                    problems.add(where, f"{name} mounts {source}, which does not exist")
        if "healthcheck" not in svc and name != "migrate":
            problems.add(where, f"{name} has no healthcheck (dependants could not wait for it)")
    for name, svc in idp_services.items():
        command = svc.get("command") or []
        if not command or command[0] not in SUBCOMMANDS:
            problems.add(where, f"{name}: command {command} does not start with an idp sub-command")
            continue
        if "--config" not in command or command[command.index("--config") + 1] != "/etc/spid-idp/idp.toml":
            problems.add(where, f"{name}: does not pass --config /etc/spid-idp/idp.toml")
        if not any(str(v).startswith("./idp.toml:/etc/spid-idp/idp.toml") for v in svc.get("volumes", [])):
            problems.add(where, f"{name}: does not mount idp.toml at /etc/spid-idp/idp.toml")
        if svc.get("read_only") is not True:
            problems.add(where, f"{name}: root filesystem is not read_only")
        if "ALL" not in (svc.get("cap_drop") or []):
            problems.add(where, f"{name}: does not drop all capabilities")
        env = svc.get("environment") or {}
        for var, value in env.items():
            check_env_name(var, schema, f"{where} ({name})", problems)
            if var.endswith("__DATABASE_URL"):
                db = urlsplit(re.sub(r"\$\{[^}]*\}", "x", str(value))).path.lstrip("/")
                if db not in databases:
                    problems.add(where, f"{name}: {var} names database {db!r}, not created by postgres-init.sql")
        check_resolves(config, set(env), [s for _, s in SERVICES.values()], f"{where} ({name})", problems)
        if name == "migrate":
            if command[:2] != ["migrate", "--all"]:
                problems.add(where, "migrate should run `migrate --all`")
            continue
        deps = svc.get("depends_on") or {}
        if (deps.get("migrate") or {}).get("condition") != "service_completed_successfully":
            problems.add(where, f"{name}: does not wait for migrate to complete successfully")
        section = dict(SERVICES.values()).get(name)
        if section:
            own = config.get(section, {})
            ports = {str(p).rsplit(":", 1)[-1] for p in svc.get("ports", [])}
            for key in ("grpc_listen", "http_listen"):
                port = own.get(key, ":").rsplit(":", 1)[-1]
                if port not in ports:
                    problems.add(where, f"{name}: {section}.{key} port {port} is not published")
            target = urlsplit(own.get("grpc_url", ""))
            if target.hostname != name:
                problems.add("deploy/compose/idp.toml", f"{section}.grpc_url host should be the compose service {name}")
            health = " ".join(svc.get("healthcheck", {}).get("test", []))
            http_port = own.get("http_listen", ":").rsplit(":", 1)[-1]
            if "/readyz" not in health or not re.search(rf"/{http_port}\b", health):
                problems.add(where, f"{name}: healthcheck does not ask /readyz on its HTTP port {http_port}")
    note(f"{len(services)} compose services, {len(idp_services)} from the idp image")
    return problems.finish("compose stack")


# ---------------------------------------------------------------------------
# chart
# ---------------------------------------------------------------------------


def load_values(chart: Path, values_file: str | None) -> dict | None:
    if values_file is None:
        return None
    return yaml.safe_load((chart / values_file).read_text()) or {}


def cmd_chart_lint(ns: argparse.Namespace) -> int:
    import helm_python as helm

    problems = Problems()
    chart = Path(ns.chart)
    note(f"helm {helm.helm_sdk_version()} (helm-python-sdk, libhelm_c {helm.helm_c_version()})")
    for scenario, (_, values_file) in SCENARIOS.items():
        report = helm.lint(
            str(chart), load_values(chart, values_file), strict=True, namespace=NAMESPACE, kube_version=ns.kube_version
        )
        for message in report.get("messages", []):
            severity = {1: "INFO", 2: "WARNING", 3: "ERROR"}.get(message.get("severity"), "UNKNOWN")
            line = f"[{severity}] {message.get('path')}: {message.get('error')}"
            # `icon is recommended` is the one informational finding we accept.
            if severity == "INFO":
                note(f"{scenario}: {line}")
            else:
                problems.add(f"helm lint ({scenario})", line)
        for error in report.get("errors", []):
            if not any(error in item for item in problems.items):
                problems.add(f"helm lint ({scenario})", error)
        note(f"{scenario}: linted (strict, kube {ns.kube_version})")
    return problems.finish("helm lint")


def render(chart: Path, scenario: str) -> tuple[dict[str, str], dict]:
    import helm_python as helm

    release, values_file = SCENARIOS[scenario]
    with helm.Chart.load(str(chart)) as loaded:
        values = load_values(chart, values_file)
        loaded.validate_schema(values)
        manifests = loaded.render(values, name=release, namespace=NAMESPACE, is_install=True)
        merged = loaded.merge_values(values)
    return manifests, merged


def cmd_chart_render(ns: argparse.Namespace) -> int:
    problems = Problems()
    chart, out = Path(ns.chart), Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    for scenario in SCENARIOS:
        try:
            manifests, merged = render(chart, scenario)
        except Exception as error:  # the SDK's typed errors all derive from Exception
            problems.add(f"render ({scenario})", str(error).strip())
            continue
        parts = []
        for path in sorted(manifests):
            name = path.rsplit("/", 1)[-1]
            if name == "NOTES.txt" or name.startswith("_") or not manifests[path].strip():
                continue
            body = manifests[path].strip("\n")
            body = re.sub(r"\A---\n", "", body)
            parts.append(f"---\n# Source: {path}\n{body}\n")
        (out / f"{scenario}.yaml").write_text("".join(parts))
        (out / f"{scenario}.values.json").write_text(json.dumps(merged, indent=2))
        count = sum(1 for d in yaml.safe_load_all("".join(parts)) if d)
        note(f"{scenario}: {count} objects -> {out / (scenario + '.yaml')}")
    return problems.finish("helm template")


def cmd_chart_negative(ns: argparse.Namespace) -> int:
    import helm_python as helm

    problems = Problems()
    chart = Path(ns.chart)
    for title, values, expected in NEGATIVE:
        try:
            with helm.Chart.load(str(chart)) as loaded:
                loaded.render(values, name="neg", namespace=NAMESPACE, is_install=True)
        except Exception as error:
            message = str(error)
            if expected not in message:
                problems.add(title, f"refused, but the message lacks {expected!r}: {message.strip()[:300]}")
            else:
                note(f"refused as expected: {title}")
            continue
        problems.add(title, "rendered without error; the chart should refuse these values")
    return problems.finish("refusal of bad values")


def documents(out: Path, scenario: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((out / f"{scenario}.yaml").read_text()) if d]


def cmd_kube_schema(ns: argparse.Namespace) -> int:
    import kubernetes_validate

    problems = Problems()
    out = Path(ns.out)
    for scenario in SCENARIOS:
        path = out / f"{scenario}.yaml"
        if not path.is_file():
            problems.add(scenario, f"{path} was not rendered")
            continue
        docs = documents(out, scenario)
        for version in ns.versions:
            checked = skipped = 0
            for doc in docs:
                ref = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    checked += 1
                except kubernetes_validate.SchemaNotFoundError:
                    if doc.get("apiVersion", "").startswith("monitoring.coreos.com/"):
                        skipped += 1
                        check_service_monitor(doc, f"{scenario} {ref}", problems)
                    else:
                        problems.add(f"{scenario} {ref}", f"no schema for {doc.get('apiVersion')} in Kubernetes {version}")
                except kubernetes_validate.ValidationError as error:
                    location = ".".join(str(p) for p in error.path)
                    problems.add(f"{scenario} {ref} (k8s {version})", f"{location}: {error.message}")
            extra = f", {skipped} CRD object(s) checked structurally" if skipped else ""
            note(f"{scenario}: {checked} objects valid against Kubernetes {version} (strict){extra}")
    return problems.finish("Kubernetes schemas")


def check_service_monitor(doc: dict, where: str, problems: Problems) -> None:
    """The Prometheus Operator CRD is not in the Kubernetes schemas."""
    spec = doc.get("spec") or {}
    allowed = {"endpoints", "selector", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}
    for key in spec:
        if key not in allowed:
            problems.add(where, f"unexpected ServiceMonitor field spec.{key}")
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.add(where, "ServiceMonitor apiVersion should be monitoring.coreos.com/v1")
    if not spec.get("endpoints") or not all(isinstance(e.get("port"), str) for e in spec["endpoints"]):
        problems.add(where, "ServiceMonitor endpoints need a named port")
    if not (spec.get("selector") or {}).get("matchLabels"):
        problems.add(where, "ServiceMonitor has no selector.matchLabels")


def selects(selector: dict, labels: dict) -> bool:
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        have = labels.get(expr["key"])
        if expr["operator"] == "In" and have not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and have in expr["values"]:
            return False
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
        if expr["operator"] == "DoesNotExist" and expr["key"] in labels:
            return False
    return True


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def check_pod_hardening(doc: dict, where: str, problems: Problems) -> None:
    spec = pod_spec(doc)
    pod_sc = spec.get("securityContext") or {}
    if spec.get("automountServiceAccountToken") is not False:
        problems.add(where, "automountServiceAccountToken should be false (no API access needed)")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.add(where, "pod seccompProfile should be RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.add(where, "uses host namespaces")
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        cwhere = f"{where} container {container['name']}"
        sc = container.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.add(cwhere, "runAsNonRoot is not set")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
            problems.add(cwhere, "runAsUser should be a non-zero uid")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.add(cwhere, "readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.add(cwhere, "allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.add(cwhere, "is privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.add(cwhere, "does not drop ALL capabilities")
        if (sc.get("capabilities") or {}).get("add"):
            problems.add(cwhere, "adds capabilities")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    problems.add(cwhere, f"no resources.{section}.{resource}")
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                problems.add(cwhere, f"mounts undeclared volume {mount['name']}")
        if container.get("image", "").endswith(":latest"):
            problems.add(cwhere, "uses a :latest image")
        for env in container.get("env") or []:
            name, value = env["name"], env.get("value")
            if value is None:
                continue
            if SECRET_URL.search(value):
                problems.add(cwhere, f"env {name} holds a URL with a password in plain text")
            literal = re.sub(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", "", value)
            if re.search(r"(PASSWORD|SECRET|TOKEN|DATABASE_URL|CACHE__URL)", name) and literal.strip():
                problems.add(cwhere, f"env {name} is a credential but has a literal value (use secretKeyRef)")
            if name == "IDP__BUS__PROPERTIES" and re.search(r'"(sasl\.password|sasl\.username)"="(?!\$\()', value):
                problems.add(cwhere, "SASL credentials in IDP__BUS__PROPERTIES must be $(VAR) references to Secret env")


def container_env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def cmd_chart_policy(ns: argparse.Namespace) -> int:
    problems = Problems()
    out = Path(ns.out)
    schema = settings_schema()
    for scenario, (release, _) in SCENARIOS.items():
        if not (out / f"{scenario}.yaml").is_file():
            problems.add(scenario, "not rendered")
            continue
        values = json.loads((out / f"{scenario}.values.json").read_text())
        check_scenario(scenario, release, documents(out, scenario), values, schema, problems)
        note(f"{scenario}: checked")
    return problems.finish("chart rules")


def check_scenario(scenario: str, release: str, docs: list[dict], values: dict, schema: dict, problems: Problems) -> None:
    by_kind: dict[str, list[dict]] = {}
    names: set[tuple[str, str]] = set()
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if (kind, name) in names:
            problems.add(scenario, f"{kind}/{name} rendered twice")
        names.add((kind, name))
        if len(name) > 63:
            problems.add(scenario, f"{kind}/{name}: name longer than 63 characters")
        if doc["metadata"].get("namespace") not in (None, NAMESPACE):
            problems.add(scenario, f"{kind}/{name}: hard-coded namespace")
        by_kind.setdefault(kind, []).append(doc)

    def annotations(doc: dict) -> dict:
        return doc["metadata"].get("annotations") or {}

    hooks = [d for d in docs if "helm.sh/hook" in annotations(d)]
    plain = [d for d in docs if "helm.sh/hook" not in annotations(d)]
    deployments = {d["metadata"]["name"]: d for d in plain if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in plain if d["kind"] == "Service"}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    secret_name = values["secrets"]["existingSecret"] or f"{fullname(release, values)}-secrets"

    # -- every pod: hardening, resources, no literal credentials, secret name
    for doc in docs:
        if pod_spec(doc) is None:
            continue
        where = f"{scenario} {doc['kind']}/{doc['metadata']['name']}"
        check_pod_hardening(doc, where, problems)
        spec = pod_spec(doc)
        for volume in spec.get("volumes") or []:
            if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                problems.add(where, f"mounts ConfigMap {volume['configMap']['name']}, which is not rendered")
        for container in spec.get("containers") or []:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref.get("name") != secret_name:
                    problems.add(where, f"env {env['name']} reads Secret {ref.get('name')}, expected {secret_name}")
                check_env_name(env["name"], schema, where, problems)

    # -- the configuration file
    config_map = configmaps.get(f"{fullname(release, values)}-config")
    if config_map is None:
        problems.add(scenario, "no <fullname>-config ConfigMap")
        return
    try:
        config = tomllib.loads(config_map["data"]["idp.toml"])
    except (KeyError, tomllib.TOMLDecodeError) as error:
        problems.add(scenario, f"ConfigMap idp.toml is not valid TOML: {error}")
        return
    check_config_data(config, schema, f"{scenario} ConfigMap idp.toml", problems)
    secrets_in_config(config, f"{scenario} ConfigMap idp.toml", problems)
    if (config_map.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook"):
        problems.add(scenario, "the main ConfigMap must not be a hook")

    # -- one Deployment and one Service per service, wired to the config
    for key, (name, section) in SERVICES.items():
        obj = f"{fullname(release, values)}-{name}"
        where = f"{scenario} {name}"
        deployment, service = deployments.get(obj), services.get(obj)
        if deployment is None or service is None:
            problems.add(where, f"missing Deployment or Service {obj}")
            continue
        pod = deployment["spec"]["template"]
        labels = pod["metadata"].get("labels") or {}
        if not selects(deployment["spec"]["selector"], labels):
            problems.add(where, "Deployment selector does not match its pod labels")
        service_selector = {"matchLabels": service["spec"].get("selector") or {}}
        matching = [
            d for d in deployments.values() if selects(service_selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        if [d["metadata"]["name"] for d in matching] != [obj]:
            problems.add(where, f"Service selects {[d['metadata']['name'] for d in matching]}, expected only {obj}")
        container = pod["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in ports:
                problems.add(where, f"Service port {port['name']} targets {port['targetPort']}, not a container port")
        args = container.get("args") or []
        if not args or args[0] != name or "--config" not in args:
            problems.add(where, f"container args {args} should be [{name}, --config, FILE]")
        else:
            path = args[args.index("--config") + 1]
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
            mount = next((m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")), None)
            if mount != "config":
                problems.add(where, f"--config {path} is not inside the config volume")
        own = config.get(section, {})
        for key_name, port_name in (("grpc_listen", "grpc"), ("http_listen", "http")):
            listen = own.get(key_name, "")
            if not listen.endswith(f":{ports.get(port_name)}"):
                problems.add(where, f"{section}.{key_name} {listen!r} does not match container port {port_name}")
        grpc_url = urlsplit(own.get("grpc_url", ""))
        service_grpc = next((p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"), None)
        if grpc_url.hostname != f"{obj}.{NAMESPACE}.svc" or grpc_url.port != service_grpc:
            problems.add(where, f"{section}.grpc_url {own.get('grpc_url')!r} is not the Service {obj}:{service_grpc}")
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/livez")):
            got = (container.get(probe) or {}).get("httpGet") or {}
            if got.get("path") != path or got.get("port") != "http":
                problems.add(where, f"{probe} should be GET {path} on port http, found {got or 'none'}")
        env = container_env(container)
        own_db = f"IDP__{section.upper()}__DATABASE_URL"
        for var in (own_db, "IDP__CACHE__URL"):
            if not ((env.get(var) or {}).get("valueFrom") or {}).get("secretKeyRef"):
                problems.add(where, f"{var} should come from the Secret (secretKeyRef)")
        others = [v for v in env if v.endswith("__DATABASE_URL") and v != own_db]
        if others:
            problems.add(where, f"gets other services' database URLs {others} (least privilege)")
        check_resolves(config, set(env), [section], where, problems)
        pod_annotations = pod["metadata"].get("annotations") or {}
        if "checksum/config" not in pod_annotations:
            problems.add(where, "no checksum/config annotation (pods would not restart on config change)")
        if values["metrics"]["podAnnotations"]:
            if pod_annotations.get("prometheus.io/port") != str(ports.get("http")) or pod_annotations.get("prometheus.io/path") != "/metrics":
                problems.add(where, "prometheus.io annotations do not point at /metrics on the http port")
        bus = values["config"]["bus"]
        if bus["sasl"]["enabled"]:
            for var in ("SPID_KAFKA_SASL_USERNAME", "SPID_KAFKA_SASL_PASSWORD"):
                if not ((env.get(var) or {}).get("valueFrom") or {}).get("secretKeyRef"):
                    problems.add(where, f"{var} should come from the Secret")
            names_in_order = [e["name"] for e in container.get("env") or []]
            if "IDP__BUS__PROPERTIES" not in names_in_order or names_in_order.index("IDP__BUS__PROPERTIES") < max(
                names_in_order.index(v) for v in ("SPID_KAFKA_SASL_USERNAME", "SPID_KAFKA_SASL_PASSWORD") if v in names_in_order
            ):
                problems.add(where, "IDP__BUS__PROPERTIES must follow the variables it references ($(VAR) expansion)")
            for prop in ("security.protocol", "sasl.mechanism"):
                if prop not in config.get("bus", {}).get("properties", {}):
                    problems.add(where, f"bus.properties.{prop} missing from the ConfigMap with SASL on")
        hpa = [d for d in by_kind.get("HorizontalPodAutoscaler", []) if d["spec"]["scaleTargetRef"]["name"] == obj]
        if hpa and "replicas" in deployment["spec"]:
            problems.add(where, "sets replicas although an HPA scales it (every upgrade would reset the scale)")

    for extra in set(deployments) - {f"{fullname(release, values)}-{n}" for n, _ in SERVICES.values()}:
        problems.add(scenario, f"unexpected Deployment {extra}")

    # -- PodDisruptionBudgets
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if values["podDisruptionBudget"]["enabled"] and len(pdbs) != len(SERVICES):
        problems.add(scenario, f"{len(pdbs)} PodDisruptionBudgets, expected {len(SERVICES)}")
    for pdb in pdbs:
        hits = [d for d in deployments.values() if selects(pdb["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        if len(hits) != 1:
            problems.add(scenario, f"PodDisruptionBudget {pdb['metadata']['name']} selects {len(hits)} Deployments")

    # -- migrations
    jobs = [d for d in hooks if d["kind"] == "Job"]
    if values["migrations"]["enabled"]:
        if len(jobs) != 1:
            problems.add(scenario, f"expected one migrations hook Job, found {len(jobs)}")
        for job in jobs:
            where = f"{scenario} Job/{job['metadata']['name']}"
            hook = set(annotations(job)["helm.sh/hook"].split(","))
            if hook != {"pre-install", "pre-upgrade"}:
                problems.add(where, f"hook {sorted(hook)} should be pre-install,pre-upgrade")
            spec = pod_spec(job)
            container = spec["containers"][0]
            if (container.get("args") or [])[:2] != ["migrate", "--all"]:
                problems.add(where, "does not run `idp migrate --all`")
            env = container_env(container)
            for _, section in SERVICES.values():
                var = f"IDP__{section.upper()}__DATABASE_URL"
                if not ((env.get(var) or {}).get("valueFrom") or {}).get("secretKeyRef"):
                    problems.add(where, f"{var} should come from the Secret")
            check_resolves(config, set(env), [s for _, s in SERVICES.values()], where, problems)
            volume_cms = [v["configMap"]["name"] for v in spec.get("volumes") or [] if "configMap" in v]
            for cm_name in volume_cms:
                cm = configmaps.get(cm_name)
                if cm is None:
                    continue
                cm_annotations = annotations(cm)
                if "helm.sh/hook" not in cm_annotations:
                    problems.add(where, f"mounts ConfigMap {cm_name}, which is not a hook: it would not exist yet at pre-install")
                elif int(cm_annotations.get("helm.sh/hook-weight", "0")) >= int(annotations(job).get("helm.sh/hook-weight", "0")):
                    problems.add(where, f"hook ConfigMap {cm_name} must have a lower hook weight than the Job")
                if cm["data"].get("idp.toml") != config_map["data"]["idp.toml"]:
                    problems.add(where, "the migration's configuration differs from the services'")
            if spec.get("serviceAccountName") and spec["serviceAccountName"] in {
                d["metadata"]["name"] for d in plain if d["kind"] == "ServiceAccount"
            }:
                problems.add(where, "uses the chart's ServiceAccount, which does not exist yet at pre-install")
    elif jobs:
        problems.add(scenario, "migrations disabled but a Job is rendered")

    # -- helm test
    tests = [d for d in hooks if annotations(d).get("helm.sh/hook") == "test"]
    if values["tests"]["enabled"]:
        if len(tests) != 1:
            problems.add(scenario, f"expected one test pod, found {len(tests)}")
        for test in tests:
            # idpctl health checks all five services; --<service> URL names
            # where each one is (idpctl's defaults are 127.0.0.1:5005x).
            argvs = [c.get("command", []) + c.get("args", []) for c in test["spec"]["containers"]]
            health = [a for a in argvs if a[:2] == ["idpctl", "health"]]
            if len(health) != 1:
                problems.add(scenario, "the test pod should run `idpctl health` once")
                continue
            argv = health[0]
            for name, _ in SERVICES.values():
                obj = f"{fullname(release, values)}-{name}"
                port = next(p["port"] for p in services[obj]["spec"]["ports"] if p["name"] == "grpc")
                target = f"http://{obj}.{NAMESPACE}.svc:{port}"
                flag = f"--{name}"
                if flag not in argv or argv.index(flag) + 1 >= len(argv) or argv[argv.index(flag) + 1] != target:
                    problems.add(scenario, f"the test pod does not check {name} at {target} ({flag} URL)")
            if test["spec"].get("restartPolicy") != "Never":
                problems.add(scenario, "the test pod should not restart")
    elif tests:
        problems.add(scenario, "tests disabled but a test pod is rendered")

    # -- Ingress: authn-gateway only
    ingresses = by_kind.get("Ingress", [])
    gateway = f"{fullname(release, values)}-authn-gateway"
    if values["ingress"]["enabled"] and len(ingresses) != 1:
        problems.add(scenario, f"expected one Ingress, found {len(ingresses)}")
    public_host = urlsplit(values["config"]["publicUrl"]).hostname
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            if rule.get("host") != (values["ingress"]["host"] or public_host):
                problems.add(scenario, f"Ingress host {rule.get('host')} is not the public URL's host {public_host}")
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if backend["name"] != gateway:
                    problems.add(scenario, f"Ingress routes to {backend['name']}; only authn-gateway is public")
                port_names = {p["name"] for p in services[gateway]["spec"]["ports"]}
                if backend["port"].get("name") not in port_names:
                    problems.add(scenario, f"Ingress backend port {backend['port']} is not a Service port")
                if backend["port"].get("name") == "grpc":
                    problems.add(scenario, "Ingress exposes the gRPC admin port")
        if values["ingress"]["tls"]["enabled"] and not ingress["spec"].get("tls"):
            problems.add(scenario, "Ingress has no TLS")

    # -- NetworkPolicies
    policies = by_kind.get("NetworkPolicy", [])
    if values["networkPolicy"]["enabled"]:
        check_network_policies(scenario, release, values, policies, deployments, tests, problems)
    elif policies:
        problems.add(scenario, "networkPolicy disabled but NetworkPolicies are rendered")

    # -- ServiceMonitor
    monitors = by_kind.get("ServiceMonitor", [])
    if values["metrics"]["serviceMonitor"]["enabled"]:
        if len(monitors) != 1:
            problems.add(scenario, f"expected one ServiceMonitor, found {len(monitors)}")
        for monitor in monitors:
            hits = [s for s in services.values() if selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
            if len(hits) != len(SERVICES):
                problems.add(scenario, f"ServiceMonitor selects {len(hits)} Services, expected {len(SERVICES)}")
    elif monitors:
        problems.add(scenario, "ServiceMonitor disabled but rendered")

    # -- HPAs target existing Deployments
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
            problems.add(scenario, f"HPA {hpa['metadata']['name']} targets a missing Deployment")


def fullname(release: str, values: dict) -> str:
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:40].rstrip("-")
    name = values.get("nameOverride") or "spid-idp"
    full = release if name in release else f"{release}-{name}"
    return full[:40].rstrip("-")


def port_allowed(rule_ports: list | None, port_name: str, port_number: int) -> bool:
    if not rule_ports:
        return True
    return any(p.get("port") in (port_name, port_number) for p in rule_ports)


def peer_matches(peers: list | None, labels: dict) -> bool:
    if peers is None:
        return True
    return any(
        "podSelector" in p and "namespaceSelector" not in p and "ipBlock" not in p and selects(p["podSelector"], labels)
        for p in peers
    )


def check_network_policies(scenario, release, values, policies, deployments, tests, problems) -> None:
    np = values["networkPolicy"]
    base = fullname(release, values)
    if len(policies) != len(SERVICES):
        problems.add(scenario, f"{len(policies)} NetworkPolicies, expected one per service")
    pods = {k: deployments.get(f"{base}-{n}") for k, (n, _) in SERVICES.items()}
    policy_of = {}
    for policy in policies:
        spec = policy["spec"]
        where = f"{scenario} NetworkPolicy/{policy['metadata']['name']}"
        if set(spec.get("policyTypes") or []) != {"Ingress", "Egress"}:
            problems.add(where, "should restrict both Ingress and Egress")
        hits = [k for k, d in pods.items() if d and selects(spec["podSelector"], d["spec"]["template"]["metadata"]["labels"])]
        if len(hits) != 1:
            problems.add(where, f"selects {hits}, expected exactly one service")
            continue
        policy_of[hits[0]] = spec
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers_key) or []:
                    if not any(peer.get(k) is not None for k in ("podSelector", "namespaceSelector", "ipBlock")):
                        problems.add(where, f"an {direction} peer has no podSelector, namespaceSelector or ipBlock")
        for rule in spec.get("ingress") or []:
            if "from" in rule and not rule["from"]:
                problems.add(where, "an ingress rule with an empty `from` admits every source")
            if "from" not in rule:
                problems.add(where, "an ingress rule without `from` admits every source")
    if any(k not in policy_of for k in SERVICES):
        return
    test_labels = tests[0]["metadata"]["labels"] if tests else None
    for key, (name, _) in SERVICES.items():
        spec = policy_of[key]
        where = f"{scenario} NetworkPolicy {name}"
        container = pods[key]["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}

        def admitted(labels: dict, port: str) -> bool:
            return any(
                port_allowed(rule.get("ports"), port, ports[port]) and peer_matches(rule.get("from"), labels)
                for rule in spec.get("ingress") or []
            )

        for other_key, (other, _) in SERVICES.items():
            labels = pods[other_key]["spec"]["template"]["metadata"]["labels"]
            wanted = other_key in (np["grpcClients"].get(key) or [])
            if admitted(labels, "grpc") != wanted:
                problems.add(where, f"gRPC from {other} is {'refused' if wanted else 'admitted'}; grpcClients says otherwise")
            reach = any(
                port_allowed(rule.get("ports"), "grpc", ports["grpc"]) and peer_matches(rule.get("to"), pods[key]["spec"]["template"]["metadata"]["labels"])
                for rule in policy_of[other_key].get("egress") or []
                if rule.get("to")
            )
            if wanted and not reach:
                problems.add(where, f"{other} may not send to it (egress) although it is a gRPC client")
        if test_labels is not None and not admitted(test_labels, "grpc"):
            problems.add(where, "the chart test pod may not reach the gRPC port")
        if admitted({"app": "anything-else"}, "grpc") or admitted({"app": "anything-else"}, "http"):
            problems.add(where, "admits arbitrary pods of the namespace")
        has_public = any(
            port_allowed(r.get("ports"), "http", ports["http"]) and r.get("from") == np["ingressControllerPeers"]
            for r in spec.get("ingress") or []
        )
        if key == "authnGateway" and np["ingressControllerPeers"] and not has_public:
            problems.add(where, "the ingress controller may not reach the public HTTP port")
        if key != "authnGateway" and has_public and np["ingressControllerPeers"] != np["metricsPeers"]:
            problems.add(where, "the ingress controller may reach a non-public service")
        egress_ports = {p.get("port") for r in spec.get("egress") or [] for p in r.get("ports") or []}
        for needed, why in ((53, "DNS"), (5432, "Postgres"), (6379, "Redis")):
            if needed not in egress_ports:
                problems.add(where, f"egress to {why} (port {needed}) is not allowed")
        if not any(p in egress_ports for p in np["egress"]["kafka"]["ports"]):
            problems.add(where, "egress to Kafka is not allowed")
        if any(not r.get("ports") for r in spec.get("egress") or []):
            problems.add(where, "an egress rule without ports admits every destination port")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("settings").set_defaults(func=cmd_settings)
    sub.add_parser("dockerfile").set_defaults(func=cmd_dockerfile)
    sub.add_parser("compose").set_defaults(func=cmd_compose)
    p = sub.add_parser("chart-lint")
    p.add_argument("chart")
    p.add_argument("--kube-version", default="v1.30.0")
    p.set_defaults(func=cmd_chart_lint)
    p = sub.add_parser("chart-render")
    p.add_argument("chart")
    p.add_argument("out")
    p.set_defaults(func=cmd_chart_render)
    p = sub.add_parser("chart-negative")
    p.add_argument("chart")
    p.set_defaults(func=cmd_chart_negative)
    p = sub.add_parser("kube-schema")
    p.add_argument("out")
    p.add_argument("versions", nargs="+")
    p.set_defaults(func=cmd_kube_schema)
    p = sub.add_parser("chart-policy")
    p.add_argument("chart")
    p.add_argument("out")
    p.set_defaults(func=cmd_chart_policy)
    ns = parser.parse_args()
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())

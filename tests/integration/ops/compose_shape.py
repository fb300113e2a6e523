"""Checks the shape of the resolved docker-compose.yml (stdin) against DESIGN.md §3.

Usage: docker-compose config | compose_shape.py SOURCE_DIR. Prints each missing thing and
exits 1 when there is one. Called by compose_config.sh.
"""
import re, sys, yaml
source = sys.argv[1]
doc = yaml.safe_load(sys.stdin.read())
services = doc["services"]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)

ess = {
    "ingress": ("ESS_INGRESS_LISTEN", ["ESS_LINE_CHANNEL_SECRET"]),
    "conversation": ("ESS_CONVERSATION_LISTEN", ["ESS_DATA_KEY"]),
    "georouter": ("ESS_GEOROUTER_LISTEN", []),
    "notifier": ("ESS_NOTIFIER_LISTEN", ["ESS_LINE_CHANNEL_TOKEN", "ESS_LINE_CHANNEL_SECRET",
                                         "ESS_LINE_API_BASE"]),
    "audit": ("ESS_AUDIT_LISTEN", []),
    "console": ("ESS_CONSOLE_LISTEN", []),
}
expected = set(ess) | {"nats", "postgres", "migrate", "line-emulator"}
need(set(services) == expected, "services are %s" % sorted(services))

stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", open(source + "/deploy/docker/Dockerfile").read(), re.M | re.I))

for name, (listen, secrets) in ess.items():
    s = services.get(name, {})
    env = s.get("environment", {})
    for var in ["ESS_NATS_URL", "ESS_PG_DSN", "ESS_LOG_LEVEL", listen] + secrets:
        need(var in env, "%s has %s" % (name, var))
    need(env.get("ESS_NATS_URL") == "nats://nats:4222", "%s talks to the nats service" % name)
    need("@postgres:5432/ess" in env.get("ESS_PG_DSN", ""), "%s talks to the postgres service" % name)
    # Least privilege (migrations 0005, 0007): the services' login, never the owner; only
    # ess-audit (its retention run) gets the login that may erase personal data.
    need(env.get("ESS_PG_DSN", "").startswith("postgresql://ess_app:"),
         "%s connects as ess_app" % name)
    need(("ESS_RETENTION_PG_DSN" in env) == (name == "audit"),
         "only audit has ESS_RETENTION_PG_DSN (%s)" % name)
    if name == "audit":
        need(env.get("ESS_RETENTION_PG_DSN", "").startswith("postgresql://ess_janitor:")
             and "@postgres:5432/ess" in env.get("ESS_RETENTION_PG_DSN", ""),
             "audit's retention run connects as ess_janitor")
    need("ESS_PG_PASSWORD" not in env and "ESS_PG_APP_PASSWORD" not in env
         and "ESS_PG_RETENTION_PASSWORD" not in env,
         "%s gets no database password beyond its own DSN" % name)
    deps = s.get("depends_on", {})
    need(deps.get("migrate", {}).get("condition") == "service_completed_successfully",
         "%s waits for migrate to complete" % name)
    need(s.get("build", {}).get("target") == name and name in stages,
         "%s builds Dockerfile target %s" % (name, name))
    need(not s.get("profiles"), "%s is in the default profile" % name)
    need("ALL" in s.get("cap_drop", []), "%s drops capabilities" % name)

m = services.get("migrate", {})
need(m.get("build", {}).get("target") == "migrate" and "migrate" in stages, "migrate builds its target")
need(m.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
     "migrate waits for a healthy postgres")
need("ESS_DATA_KEY" in m.get("environment", {}) and "ESS_PG_DSN" in m.get("environment", {}),
     "migrate has ESS_PG_DSN and ESS_DATA_KEY")
need(m.get("restart") in (None, "no"), "migrate is one-shot")
menv = m.get("environment", {})
need(menv.get("ESS_PG_DSN", "").startswith("postgresql://ess:"), "migrate connects as the owner ess")
need("ESS_PG_APP_PASSWORD" in menv and "ESS_PG_RETENTION_PASSWORD" in menv,
     "migrate has the passwords of the two logins")
script = " ".join(map(str, m.get("entrypoint", []) or [])) + " " + " ".join(map(str, m.get("command", []) or []))
steps = [script.find(s) for s in (
    "essctl db migrate",
    "essctl db login-role ess_app --member-of ess_service --password-env ESS_PG_APP_PASSWORD",
    "essctl db login-role ess_janitor --member-of ess_retention --password-env ESS_PG_RETENTION_PASSWORD")]
need(all(i >= 0 for i in steps) and steps == sorted(steps),
     "migrate migrates, then makes the ess_app and ess_janitor logins")

e = services.get("line-emulator", {})
need(e.get("profiles") == ["dev"], "line-emulator only under profile dev")
need(e.get("build", {}).get("target") == "line-emulator" and "line-emulator" in stages,
     "line-emulator builds its target")

n = services.get("nats", {})
need(str(n.get("image", "")).startswith("nats:2.9"), "nats runs nats:2.9")
need("-js" in n.get("command", []), "nats runs with -js")
need(any(str(v).startswith("nats-data:/data") for v in n.get("volumes", [])),
     "nats stores on the nats-data volume")
need("nats-data" in doc.get("volumes", {}) and "pg-data" in doc.get("volumes", {}),
     "the volumes are declared")
need("ESS_NATS_STORE_KEY" in n.get("environment", {}), "nats gets the store key")
need("healthcheck" in n, "nats has a healthcheck")
template_vars = set(re.findall(r"\$(ESS_NATS_[A-Z_]+)", open(source + "/deploy/nats/ess.conf").read()))
need(template_vars == set(n.get("environment", {})), "nats gets exactly the variables of deploy/nats/ess.conf (%s)" % sorted(template_vars))
conf = open(source + "/deploy/nats/ess.conf").read()
need(re.search(r"^\s*cipher:\s*chachapoly", conf, re.M) is not None, "the store cipher is set")

p = services.get("postgres", {})
need(str(p.get("image", "")) == "postgres:15", "postgres runs postgres:15")
need(any(str(v).startswith("pg-data:/var/lib/postgresql/data") for v in p.get("volumes", [])),
     "postgres stores on the pg-data volume")
need("healthcheck" in p, "postgres has a healthcheck")
need("synchronous_commit=off" not in " ".join(map(str, p.get("command", []))), "synchronous_commit is never off")

for problem in problems:
    print("missing: " + problem)
sys.exit(1 if problems else 0)

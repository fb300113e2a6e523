"""Checks the shape of the resolved HA compose files (stdin) against docs/high-availability.md.

Usage: docker-compose -f docker-compose.yml -f deploy/docker/docker-compose.ha.yml config |
compose_ha_shape.py SOURCE_DIR. Prints each missing thing and exits 1 when there is one.
Called by compose_ha.sh.
"""
import os, sys, yaml
source = sys.argv[1]
services = yaml.safe_load(sys.stdin.read())["services"]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)

members = ["nats", "nats-2", "nats-3"]
urls = ",".join("nats://%s:4222" % m for m in members)
stores = set()
for index, name in enumerate(members, 1):
    s = services.get(name, {})
    env = s.get("environment", {})
    need(s.get("command", [])[-1:] == ["/etc/nats/ess-cluster.conf"], "%s runs ess-cluster.conf" % name)
    need(env.get("ESS_NATS_SERVER_NAME") == "ess-nats-%d" % index, "%s has its own name" % name)
    routes = sorted(v.split("@")[-1] for k, v in env.items() if k.startswith("ESS_NATS_ROUTE_"))
    need(routes == sorted("%s:6222" % m for m in members), "%s routes to the three members" % name)
    need("ESS_NATS_STORE_KEY" in env, "%s encrypts its store" % name)
    mounts = [v.split(":") for v in s.get("volumes", [])]
    store = [m[0] for m in mounts if len(m) > 1 and m[1] == "/data"]
    need(len(store) == 1, "%s has one store volume" % name)
    stores.update(store)
    for conf in ("ess.conf", "ess-cluster.conf"):
        need(any(m[1:2] == ["/etc/nats/" + conf] and os.path.samefile(m[0], os.path.join(source, "deploy/nats", conf))
                 for m in mounts if len(m) > 1),
             "%s mounts deploy/nats/%s" % (name, conf))
need(len(stores) == 3, "the three members have three different stores")

for name in ["ingress", "conversation", "georouter", "notifier", "audit", "console"]:
    env = services.get(name, {}).get("environment", {})
    need(env.get("ESS_NATS_URL") == urls, "%s lists the three NATS members" % name)
    need(env.get("ESS_NATS_REPLICAS") == "3", "%s asks for three copies" % name)
    dsn = env.get("ESS_PG_DSN", "")
    need(dsn.startswith("postgresql://ess_app:") and "@postgres:5432,postgres-standby:5432/" in dsn
         and dsn.endswith("?target_session_attrs=read-write"),
         "%s connects as ess_app to whichever of the two accepts writes" % name)
    need("ESS_LOG_LEVEL" in env, "%s keeps the root file's variables" % name)
retention = services.get("audit", {}).get("environment", {}).get("ESS_RETENTION_PG_DSN", "")
need("@postgres:5432,postgres-standby:5432/" in retention, "audit's retention run follows the primary")

primary = services.get("postgres", {})
command = " ".join(primary.get("command", []))
need("synchronous_standby_names=ess_standby" in command, "the primary waits for ess_standby")
need("synchronous_commit=on" in command, "the primary commits synchronously")
need(any(v.endswith(":/docker-entrypoint-initdb.d/10-ess-replication.sh:ro") for v in primary.get("volumes", [])),
     "the primary creates its replication login at first start")
standby = services.get("postgres-standby", {})
need(standby.get("environment", {}).get("ESS_PG_STANDBY_NAME") == "ess_standby",
     "the standby streams as ess_standby")
need(standby.get("environment", {}).get("ESS_PG_PRIMARY_HOST") == "postgres", "the standby copies postgres")
need("postgres-standby" in services.get("migrate", {}).get("depends_on", {}),
     "the migrations wait for the standby (their commits need it)")

for p in problems:
    print("missing: " + p)
sys.exit(1 if problems else 0)

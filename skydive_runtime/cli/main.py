"""`skydive [-c FILE]... <command>`: run a service or drive an analyzer."""

import argparse
import asyncio
import logging
import os
import sys

from .. import __version__
from ..common.service import serve_until_signalled
from ..config import Config, ConfigError
from ..storage import StoreError
from . import client, store


def _load_config(args, overrides):
    files = list(args.config or []) + list(getattr(args, "service_config", None) or [])
    if not files and os.path.exists("/etc/skydive/skydive.yml") and args.command in ("analyzer", "agent", "allinone", "store"):
        files = ["/etc/skydive/skydive.yml"]
    return Config.load(files, overrides={k: v for k, v in overrides.items() if v is not None})


def _setup_logging(config, verbose):
    level = "DEBUG" if verbose else config.get_string("logging.level", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _run_services(args):
    overrides = {}
    if args.command in ("analyzer", "allinone") and args.listen:
        overrides["analyzer.listen"] = args.listen
    if args.command == "agent" and args.listen:
        overrides["agent.listen"] = args.listen
    if args.command in ("agent", "allinone") and getattr(args, "agent_listen", None):
        overrides["agent.listen"] = args.agent_listen
    if getattr(args, "host_id", None):
        overrides["host_id"] = args.host_id
    config = _load_config(args, overrides)
    if args.command == "allinone":
        config.set("analyzers", [config.get_string("analyzer.listen")])
    _setup_logging(config, args.verbose)
    services = []
    if args.command in ("analyzer", "allinone"):
        from ..analyzer.service import Analyzer
        services.append(Analyzer(config))
    if args.command in ("agent", "allinone"):
        from ..agent.service import Agent
        services.append(Agent(config))
    asyncio.run(serve_until_signalled(*services))
    return 0


CONF_HELP = "configuration file (repeatable, merged in order)"


def _add_conf(parser):
    """`skydive analyzer -c FILE` as well as `skydive -c FILE analyzer` (upstream's -c is global);
    files given before the command are read first."""
    parser.add_argument("-c", "--conf", dest="service_config", action="append", metavar="FILE", help=CONF_HELP)


def build_parser():
    p = argparse.ArgumentParser(prog="skydive", description="Skydive network topology and flow analyzer")
    p.add_argument("-c", "--conf", dest="config", action="append", metavar="FILE", help=CONF_HELP)
    p.add_argument("--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="command")
    sub.required = True

    a = sub.add_parser("analyzer", help="run the analyzer (graph hub, API, web UI)")
    a.add_argument("--listen", help="address:port to listen on (default 127.0.0.1:8082)")
    a.add_argument("--host-id", help="identifier of this host")
    _add_conf(a)

    g = sub.add_parser("agent", help="run the agent (topology probes, captures)")
    g.add_argument("--listen", help="address:port to listen on (default 127.0.0.1:8081)")
    g.add_argument("--host-id", help="identifier of this host")
    _add_conf(g)

    al = sub.add_parser("allinone", help="run an analyzer and an agent in one process")
    al.add_argument("--listen", help="analyzer address:port (default 127.0.0.1:8082)")
    al.add_argument("--agent-listen", help="agent address:port (default 127.0.0.1:8081)")
    al.add_argument("--host-id", help="identifier of this host")
    _add_conf(al)

    sub.add_parser("version", help="print the version")
    client.add_parser(sub)
    store.add_parser(sub)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print("skydive %s" % __version__)
            return 0
        if args.command == "client":
            return client.run(args, Config.load(args.config) if args.config else None)
        if args.command == "store":
            return store.run(args, _load_config(args, {}))
        return _run_services(args)
    except ConfigError as exc:
        print("skydive: configuration error: %s" % exc, file=sys.stderr)
        return 2
    except client.ClientError as exc:
        print("skydive: %s" % exc, file=sys.stderr)
        return 1
    except StoreError as exc:
        print("skydive: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print("skydive: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The command-line options the runners share. Each runner adds them where its --help has always listed
them (after its own), so these are functions that add options rather than an argparse parent, whose
options would come first."""

import argparse


def runner_parser(doc):
    """A runner's parser: the first paragraph of its docstring as the description."""
    return argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_scratch_options(parser, *, db_name, redis_db, redis_db_help):
    """The product's settings module, and the scratch database and broker DB on the shared servers."""
    parser.add_argument(
        "--settings",
        default="project.settings",
        help="DJANGO_SETTINGS_MODULE of every process (to try a variant; on PYTHONPATH)",
    )
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--db-name", default=db_name)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL")
    parser.add_argument("--redis-db", type=int, default=redis_db, help=redis_db_help)


def add_result_options(parser, *, out, keep_db_help="keep the bench database afterwards"):
    parser.add_argument("--keep-db", action="store_true", help=keep_db_help)
    parser.add_argument("--out", default=str(out))

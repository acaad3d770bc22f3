"""The operator CLI: `python -m cli <command>`. Not deployed: it may import devstack.

Against the local stack it needs no flags: it reads `.local/stack.env`, written by `make dev`.
Against AWS, set the same environment variables the Lambda functions have.

  token --user EMAIL [--reset-password]   print a bearer token (ID token) for the user; a user whose
                                     password this machine does not know gets a new one, which
                                     against a Cognito that is not on this machine needs the flag
  user add EMAIL --workspace ID      create the user, the workspace if new, and the membership
  credits --workspace ID [--set N | --add N]   show or change a balance (always via the ledger)
  worker [--once]                    the local SQS poller that runs the worker handler
  sweep                              run the sweeper once
  pricing --workspace ID [--set full|first_free|default]   show or override a workspace's retry pricing
  dlq list [--max N]                 the messages in the jobs queue's dead-letter queue (left there)
  dlq redrive [--max N]              move them back to the jobs queue
  reprocess --workspace ID [--error-code CODE] [--since ISO] [--dry-run] [--free]
                                     re-queue the workspace's failed jobs (as a manual retry)
  cancel JOB                         cancel an upload, a queued or a processing job (its charge refunded)

`reprocess` and `dlq redrive` show their progress on stderr: a bar with counts and the time left
on a terminal, a plain line every tenth of the way otherwise (cli/progress.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from chalicelib.errors import DomainError

REPO = Path(__file__).resolve().parents[1]


def _local() -> Path:
    """The local stack's state folder: `.local/`, or DEVSTACK_STATE_DIR as for `make dev`."""
    return Path(os.environ.get("DEVSTACK_STATE_DIR") or REPO / ".local")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.no_local_stack:
        _load_local_stack()
    try:
        return int(args.run(args) or 0)
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cli", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--no-local-stack",
        action="store_true",
        help="ignore .local/stack.env (use only the environment, e.g. against AWS)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    token = sub.add_parser("token", help="print a bearer token for a user")
    token.add_argument("--user", required=True, metavar="EMAIL")
    token.add_argument("--access", action="store_true", help="print the access token instead of the ID token")
    token.add_argument(
        "--reset-password",
        action="store_true",
        help="allow giving the user a new password on a Cognito that is not on this machine",
    )
    token.set_defaults(run=_token)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user and their membership")
    add.add_argument("email")
    add.add_argument("--workspace", required=True, metavar="ID")
    add.add_argument("--role", choices=["owner", "member"], default="owner")
    add.add_argument("--password")
    add.add_argument("--credits", type=int, default=10, help="credits of a NEW workspace (default 10)")
    add.add_argument("--name", help="name of a new workspace")
    add.set_defaults(run=_user_add)

    credits = sub.add_parser("credits", help="show or change a workspace's balance")
    credits.add_argument("--workspace", required=True, metavar="ID")
    change = credits.add_mutually_exclusive_group()
    change.add_argument("--set", type=int, metavar="N")
    change.add_argument("--add", type=int, metavar="N")
    credits.set_defaults(run=_credits)

    worker = sub.add_parser("worker", help="poll SQS and run the worker handler (local stack)")
    worker.add_argument("--once", action="store_true", help="process what is queued now, then exit")
    worker.set_defaults(run=_worker)

    sweep = sub.add_parser("sweep", help="run the sweeper once")
    sweep.set_defaults(run=_sweep)

    pricing = sub.add_parser("pricing", help="show or override a workspace's retry pricing")
    pricing.add_argument("--workspace", required=True, metavar="ID")
    pricing.add_argument("--set", choices=["full", "first_free", "default"], help="default: RETRY_PRICING")
    pricing.set_defaults(run=_pricing)

    dlq_parser = sub.add_parser("dlq", help="the dead-letter queue")
    dlq = dlq_parser.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq.add_parser("list", help="print the messages in the DLQ as JSON lines (they stay there)")
    dlq_list.add_argument("--max", type=int, default=100, metavar="N")
    dlq_list.set_defaults(run=_dlq_list)
    redrive = dlq.add_parser("redrive", help="move DLQ messages back to the jobs queue")
    redrive.add_argument("--max", type=int, metavar="N", help="at most N (default: all)")
    redrive.set_defaults(run=_dlq_redrive)

    again = sub.add_parser("reprocess", help="re-queue a workspace's failed jobs")
    again.add_argument("--workspace", required=True, metavar="ID")
    again.add_argument("--error-code", metavar="CODE", help="only jobs that failed with this code")
    again.add_argument("--since", metavar="ISO", help="only jobs that failed at or after this time")
    again.add_argument("--dry-run", action="store_true", help="list what would be re-queued; change nothing")
    again.add_argument("--free", action="store_true", help="the operator pays (operator_grant entries)")
    again.set_defaults(run=_reprocess)

    cancel = sub.add_parser("cancel", help="cancel a job; what it was charged comes back")
    cancel.add_argument("job", metavar="JOB", help="the job's id")
    cancel.set_defaults(run=_cancel)
    return parser


def _load_local_stack() -> None:
    if (_local() / "stack.env").exists():
        from devstack.bootstrap import load_stack_env

        load_stack_env(_local() / "stack.env")


def _token(args: argparse.Namespace) -> int:
    from chalicelib.bootstrap import user_directory
    from chalicelib.processing.accounts import new_password

    password = _known_password(args.user)
    if password is None and not args.reset_password and not _cognito_is_local():
        # Against a real pool this would lock a real person out of their account.
        print(
            f"error: no password for {args.user} is known here, and Cognito is not on this machine "
            f"({_cognito_endpoint() or 'AWS'}): giving them a new one would replace theirs. "
            "Pass --reset-password to do it anyway.",
            file=sys.stderr,
        )
        return 2
    users = user_directory()
    if password is None:  # unknown here: give the user a new one and remember it
        password = new_password()
        users.ensure_user(args.user, password)
        _remember(args.user, password)
    tokens = users.sign_in(args.user, password)
    print(tokens["AccessToken"] if args.access else tokens["IdToken"])
    return 0


def _cognito_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or os.environ.get("AWS_ENDPOINT_URL") or ""


def _cognito_is_local() -> bool:
    """The Cognito the CLI talks to is on this machine (the local stack's moto on loopback)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(_cognito_endpoint()).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # no endpoint (AWS itself), or a name


def _user_add(args: argparse.Namespace) -> int:
    from chalicelib.bootstrap import add_user

    added = add_user(
        args.email,
        args.workspace,
        role=args.role,
        password=args.password,
        credits=args.credits,
        workspace_name=args.name,
    )
    if added.password:
        _remember(added.email, added.password)
    state = "created" if added.created_workspace else "existing"
    print(f"user {added.email} ({added.user_id}) is {args.role} of {state} workspace {added.workspace_id}")
    if args.password is None:
        print(f"password: {added.password}")
    return 0


def _credits(args: argparse.Namespace) -> int:
    from chalicelib.bootstrap import services
    from chalicelib.processing import accounts

    repo = services().repo
    if args.set is not None:
        balance = accounts.set_credits(repo, args.workspace, args.set)
    elif args.add is not None:
        balance = accounts.add_credits(repo, args.workspace, args.add)
    else:
        balance = accounts.show_credits(repo, args.workspace)
    print(f"workspace {args.workspace}: {balance} credits (ledger sum {repo.ledger_sum(args.workspace)})")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from devstack.worker import run_worker

    with contextlib.suppress(KeyboardInterrupt):
        run_worker(once=args.once)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from chalicelib.handlers import sweeper

    print(json.dumps(sweeper.handle()))
    return 0


def _pricing(args: argparse.Namespace) -> int:
    from chalicelib.bootstrap import services
    from chalicelib.errors import WorkspaceNotFoundError
    from chalicelib.processing import pricing

    svc = services()
    if args.set is not None:
        effective = pricing.set_pricing(svc, args.workspace, None if args.set == "default" else args.set)
    else:
        workspace = svc.repo.get_workspace(args.workspace)
        if workspace is None:
            raise WorkspaceNotFoundError()
        effective = pricing.pricing_of(svc, workspace)
    print(f"workspace {args.workspace}: retry pricing {effective}")
    return 0


def _dead_letters() -> object:
    from chalicelib.adapters.sqs import DeadLetters
    from chalicelib.config import get_settings

    return DeadLetters.from_settings(get_settings())


def _dlq_list(args: argparse.Namespace) -> int:
    from chalicelib.adapters.sqs import DeadLetters

    dead = _dead_letters()
    assert isinstance(dead, DeadLetters)
    messages = dead.peek(max(1, args.max))
    for message in messages:
        print(json.dumps(message))
    print(f"{len(messages)} message(s) in the dead-letter queue", file=sys.stderr)
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    from chalicelib.adapters.sqs import DeadLetters
    from cli.progress import Progress

    dead = _dead_letters()
    assert isinstance(dead, DeadLetters)
    total = dead.depth()
    progress = Progress("redrive", min(total, args.max) if args.max is not None else total)
    how, moved = dead.redrive(args.max, each=progress.advance)
    progress.close()
    if how == "move-task":
        print("started a message move task: SQS moves every message back to the jobs queue")
    else:
        print(f"moved {moved} message(s) back to the jobs queue")
    return 0


def _reprocess(args: argparse.Namespace) -> int:
    from chalicelib.adapters.sqs import parse_since
    from chalicelib.bootstrap import services
    from chalicelib.domain import ReprocessRequest, new_id
    from chalicelib.processing import reprocess
    from cli.progress import Progress

    request = ReprocessRequest(
        workspace_id=args.workspace,
        error_code=args.error_code,
        since=parse_since(args.since),
        free=args.free,
        dry_run=args.dry_run,
        request_id=f"cli-{new_id()}",
    )
    bar: list[Progress] = []

    def each(done: int, total: int) -> None:
        if not bar:
            bar.append(Progress("reprocess", total))
        bar[0].advance()

    report = reprocess.reprocess(services(), request, actor="cli", each=each)
    for progress in bar:
        progress.close()
    for job_id in report.selected:
        state = report.refused.get(job_id, "would be re-queued" if args.dry_run else "re-queued")
        print(f"{job_id}: {state}")
    verb = "would re-queue" if args.dry_run else "re-queued"
    count = len(report.selected) if args.dry_run else report.requeued
    print(
        f"{len(report.selected)} failed job(s) matched; {verb} {count}; "
        f"{report.credits_charged} credit(s) charged; {len(report.refused)} refused"
    )
    return 1 if report.refused else 0


def _cancel(args: argparse.Namespace) -> int:
    from chalicelib.bootstrap import services
    from chalicelib.handlers.params import parse_job_id
    from chalicelib.processing import cancel

    cancelled = cancel.cancel_as_operator(services(), parse_job_id(args.job), actor="cli")
    print(f"{cancelled.job.id}: cancelled; {cancelled.credits_refunded} credit(s) refunded")
    return 0


def _known_password(email: str) -> str | None:
    passwords = _local() / "passwords.json"
    if passwords.exists():
        known = json.loads(passwords.read_text()).get(email)
        if known:
            return str(known)
    demo = _local() / "demo-password"
    if email == "alice@example.com" and demo.exists():
        return demo.read_text().strip()
    return None


def _remember(email: str, password: str) -> None:
    """Local stack only: keep passwords under .local/ (ignored by git) so `token` can sign in."""
    passwords = _local() / "passwords.json"
    passwords.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(passwords.read_text()) if passwords.exists() else {}
    known[email] = password
    passwords.write_text(json.dumps(known, indent=2))
    passwords.chmod(0o600)

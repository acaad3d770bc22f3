"""A local stand-in for the part of Stripe this product uses. Never deployed.

No payment provider is reachable from this machine, so the local stack (and the test stack) run
this small server on 127.0.0.1. It answers exactly the two API calls the product makes through
Stripe's own Python library (pointed here by STRIPE_API_BASE):

- `POST /v1/checkout/sessions`: create a Checkout session (form-encoded, as the library sends it;
  `Authorization: Bearer <the API key>` is checked as Stripe checks it);
- `GET /v1/checkout/sessions/{id}`: retrieve it (404 with Stripe's error shape when unknown).

and it plays Stripe's hosted pages and its webhook sender:

- `GET /pay/{id}`: the "pay" page (the pack and its price, Pay and Cancel); `POST /pay/{id}`
  completes the session, redirects the browser to its success URL and sends
  `checkout.session.completed` to the webhook URL, signed with the real scheme
  (`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the webhook
  secret>`), computed here with hmac, not with Stripe's library, so that the app's verification
  (the library's) is checked against an independent signer;
- on a paid session's page, Refund and Dispute buttons send `charge.refunded` and
  `charge.dispute.created` (the local stack's way to try a reversal).

Failed deliveries are tried again a few times, as Stripe does (in seconds here, not hours).
Tests drive it directly: `pay`, `refund`, `dispute`, `deliver`, `hold_webhooks` /
`release_webhooks` (to see the dashboard wait for a webhook that has not landed yet).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

import requests

from devstack.services import LoopbackServer

API_VERSION = "2026-10-28.endive"  # what the pinned library (stripe 16.1.0) asks for
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds between a failed delivery's next tries
SESSION_PATH = re.compile(r"^/v1/checkout/sessions/(cs_[A-Za-z0-9_]+)$")
PAY_PATH = re.compile(r"^/pay/(cs_[A-Za-z0-9_]+)(?:/(refund|dispute))?$")


def signature_header(payload: str, secret: str, timestamp: int) -> str:
    """Stripe's webhook signature scheme, v1."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def nested(form: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`line_items[0][price_data][currency]=usd`) as nested data."""
    root: dict[str, Any] = {}
    for key, value in form:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


@dataclass
class Delivery:
    event: dict[str, Any]
    status: int | None = None  # the webhook's last answer (None: no answer)
    tries: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class StripeStandIn(LoopbackServer):
    def __init__(self, port: int, api_key: str, webhook_secret: str, webhook_url: str) -> None:
        super().__init__(port, _handler(self), "stripe-standin")
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.sessions: dict[str, dict[str, Any]] = {}
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._held: list[Delivery] | None = None

    # --- the API ---------------------------------------------------------------------------------
    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """A Checkout session from the library's parameters (ValueError: Stripe would say 400)."""
        if params.get("mode") != "payment":
            raise ValueError("mode must be payment")
        items = params.get("line_items")
        if not isinstance(items, list) or len(items) != 1:
            raise ValueError("line_items: exactly one item")
        price = items[0].get("price_data") or {}
        amount = int(price.get("unit_amount", "0")) * int(items[0].get("quantity", "1"))
        for name in ("success_url", "cancel_url"):
            if not str(params.get(name, "")).startswith(("http://", "https://")):
                raise ValueError(f"{name} must be a URL")
        if amount <= 0 or not price.get("currency"):
            raise ValueError("line_items[0][price_data]: unit_amount and currency are required")
        session_id = _id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": price["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {},
            "success_url": params["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
            "cancel_url": params["cancel_url"],
            "payment_intent": None,
            "url": f"{self.url}/pay/{session_id}",
            "created": int(time.time()),
            "expires_at": int(time.time()) + 24 * 3600,
            "livemode": False,
            "line_items_description": (price.get("product_data") or {}).get("name", ""),
        }
        with self._lock:
            self.sessions[session_id] = session
        return session

    # --- Stripe's side of a payment ----------------------------------------------------------------
    def pay(self, session_id: str, wait: bool = True) -> Delivery:
        """The buyer paid: the session completes and `checkout.session.completed` is sent."""
        return self.send("checkout.session.completed", self.complete(session_id), wait=wait)

    def complete(self, session_id: str) -> dict[str, Any]:
        """The buyer paid (nothing is sent): the session as `checkout.session.completed` carries it."""
        with self._lock:
            session = self.sessions[session_id]
            if session["payment_status"] != "paid":
                session.update(status="complete", payment_status="paid", url=None, payment_intent=_id("pi"))
            return _public(session)

    def refund(self, session_id: str, amount: int | None = None, wait: bool = True) -> Delivery:
        """Refund `amount` more (default: the rest): `charge.refunded`, amount_refunded cumulative."""
        with self._lock:
            session = self.sessions[session_id]
            total = int(session["amount_total"])
            refunded = min(total, int(session.get("amount_refunded", 0)) + (amount or total))
            session["amount_refunded"] = refunded
            charge = self._charge(session) | {"amount_refunded": refunded, "refunded": refunded == total}
        return self.send("charge.refunded", charge, wait=wait)

    def dispute(self, session_id: str, wait: bool = True) -> Delivery:
        with self._lock:
            session = self.sessions[session_id]
            dispute = {
                "id": _id("dp"),
                "object": "dispute",
                "amount": int(session["amount_total"]) - int(session.get("amount_refunded", 0)),
                "currency": session["currency"],
                "charge": self._charge(session)["id"],
                "payment_intent": session["payment_intent"],
                "reason": "fraudulent",
                "status": "needs_response",
            }
        return self.send("charge.dispute.created", dispute, wait=wait)

    def _charge(self, session: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "ch_" + str(session["payment_intent"]).removeprefix("pi_"),
            "object": "charge",
            "amount": int(session["amount_total"]),
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "paid": True,
        }

    # --- the webhook sender -------------------------------------------------------------------------
    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    def send(self, kind: str, obj: dict[str, Any], wait: bool = True) -> Delivery:
        """Send a new event (held while webhooks are held); `wait`: until its last try is over."""
        delivery = Delivery(self.event(kind, obj))
        with self._lock:
            self.deliveries.append(delivery)
            if self._held is not None:
                self._held.append(delivery)
                return delivery
        if wait:
            self._deliver(delivery)
        else:
            threading.Thread(target=self._deliver, args=(delivery,), daemon=True).start()
        return delivery

    def post(self, body: str, timestamp: int | None = None, secret: str | None = None) -> requests.Response:
        """One signed POST of `body` to the webhook (a redelivery, or a test's own body)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(body, secret or self.webhook_secret, stamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return requests.post(self.webhook_url, data=body.encode(), headers=headers, timeout=30)

    def _deliver(self, delivery: Delivery) -> None:
        body = json.dumps(delivery.event)
        for delay in (0.0, *RETRY_DELAYS):
            time.sleep(delay)
            delivery.tries += 1
            try:
                delivery.status = self.post(body).status_code
            except requests.RequestException:
                delivery.status = None
            if delivery.status is not None and 200 <= delivery.status < 300:
                break
        delivery.done.set()

    def hold_webhooks(self) -> None:
        """Keep new events until `release_webhooks` (the return page then waits, as it would for a
        slow webhook)."""
        with self._lock:
            self._held = []

    def release_webhooks(self) -> list[Delivery]:
        with self._lock:
            held, self._held = self._held or [], None
        for delivery in held:
            self._deliver(delivery)
        return held


# --- HTTP -----------------------------------------------------------------------------------------
def _handler(standin: StripeStandIn) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if match := SESSION_PATH.match(path):
                if self._authorized():
                    self._session(match.group(1))
            elif (match := PAY_PATH.match(path)) and not match.group(2):
                self._pay_page(match.group(1))
            else:
                self._json(404, _error("Unrecognized request URL", "resource_missing"))

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if path == "/v1/checkout/sessions":
                if self._authorized():
                    self._create(raw)
            elif match := PAY_PATH.match(path):
                self._pay_action(match.group(1), match.group(2))
            else:
                self._json(404, _error("Unrecognized request URL", "resource_missing"))

        # --- the API
        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {standin.api_key}":
                return True
            error = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            self._json(401, error)
            return False

        def _create(self, raw: str) -> None:
            try:
                session = standin.create_session(nested(parse_qsl(raw, keep_blank_values=True)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self._json(400, _error(str(exc), "parameter_invalid"))
                return
            self._json(200, _public(session))

        def _session(self, session_id: str) -> None:
            session = standin.sessions.get(session_id)
            if session is None:
                self._json(404, _error(f"No such checkout.session: '{session_id}'", "resource_missing"))
                return
            self._json(200, _public(session))

        # --- the hosted pages
        def _pay_page(self, session_id: str) -> None:
            session = standin.sessions.get(session_id)
            if session is None:
                self._html(404, "Checkout not found", "<p>This checkout does not exist.</p>")
                return
            what = html.escape(str(session["line_items_description"]))
            price = f"{int(session['amount_total']) / 100:.2f} {str(session['currency']).upper()}"
            if session["payment_status"] == "paid":
                body = (
                    f"<p data-testid='paid'>Paid: {what} for {html.escape(price)}.</p>"
                    f"<form method='post' action='/pay/{session_id}/refund'><button>Refund</button></form>"
                    f"<form method='post' action='/pay/{session_id}/dispute'><button>Dispute</button></form>"
                )
            else:
                body = (
                    f"<p data-testid='pack'>{what}</p><p data-testid='price'>{html.escape(price)}</p>"
                    f"<form method='post' action='/pay/{session_id}'><button type='submit'>Pay</button>"
                    "</form>"
                    f"<p><a href='{html.escape(str(session['cancel_url']), quote=True)}'>Cancel</a></p>"
                )
            self._html(200, "Pay (local Stripe stand-in)", body)

        def _pay_action(self, session_id: str, action: str | None) -> None:
            session = standin.sessions.get(session_id)
            if session is None:
                self._html(404, "Checkout not found", "<p>This checkout does not exist.</p>")
                return
            if action is None:
                standin.pay(session_id, wait=False)  # the browser goes back while the webhook is sent
                target = str(session["success_url"])
            else:
                if session["payment_status"] == "paid":
                    (standin.refund if action == "refund" else standin.dispute)(session_id, wait=False)
                target = f"/pay/{session_id}"
            self.send_response(303)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", _id("req"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _html(self, status: int, title: str, content: str) -> None:
            page = (
                f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
                f"</title></head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _public(session: dict[str, Any]) -> dict[str, Any]:
    """The session as Stripe's API returns it (without the stand-in's own notes)."""
    return {k: v for k, v in session.items() if k not in ("line_items_description", "amount_refunded")}


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "code": code, "message": message}}

"""The PaymentProvider port on Stripe's own Python library.

- Checkout sessions are created and retrieved with `StripeClient` (its `api` base address is
  STRIPE_API_BASE when set: the local stack's stand-in; else Stripe's);
- webhook events are verified with the library's `Webhook.construct_event` (the Stripe-Signature
  scheme, tolerance 300 s);
- the API key and the webhook signing secret are read at run time from the Secrets Manager secret
  STRIPE_SECRET_ID (Powertools Parameters, cached 5 minutes in a warm container), never from the
  environment.

Nothing above this module sees a Stripe type or exception.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe

from chalicelib.adapters.secrets import json_secret
from chalicelib.config import Settings
from chalicelib.domain import utcnow
from chalicelib.errors import PaymentProviderError, PaymentsUnavailableError, WebhookRejectedError
from chalicelib.payments.ports import CheckoutRequest, CheckoutSession, ProviderEvent

TOLERANCE_SECONDS = 300  # Stripe's own default: an older signed timestamp is a replay
TIMEOUT_SECONDS = 10  # per request (the library's default, 80 s, outlives API Gateway's 29 s)
NETWORK_RETRIES = 2  # the library retries with the same Idempotency-Key


class StripeProvider:
    def __init__(self, secret_id: str, api_base: str = "") -> None:
        self._secret_id = secret_id
        self._api_base = api_base
        self._clients: dict[str, stripe.StripeClient] = {}  # by API key: a rotated key gets its own

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeProvider:
        return cls(settings.stripe_secret_id, settings.stripe_api_base)

    # --- the two API calls --------------------------------------------------------------------
    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        pack = request.pack
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": pack.price,
                        "product_data": {"name": f"{pack.credits} credits"},
                    },
                }
            ],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "client_reference_id": request.workspace_id,
            # What the webhook grants: read back from the session Stripe signs into the event.
            "metadata": {
                "workspace_id": request.workspace_id,
                "pack": pack.id,
                "credits": str(pack.credits),
                "buyer": request.buyer,
            },
        }
        if request.email:
            params["customer_email"] = request.email
        try:
            session = self._client().v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            raise PaymentProviderError() from exc
        return _session(session.to_dict())

    def retrieve_checkout(self, session_id: str) -> CheckoutSession | None:
        try:
            session = self._client().v1.checkout.sessions.retrieve(session_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise PaymentProviderError() from exc
        except stripe.StripeError as exc:
            raise PaymentProviderError() from exc
        return _session(session.to_dict())

    # --- the webhook ---------------------------------------------------------------------------
    def verify_event(self, payload: bytes, signature: str | None) -> ProviderEvent:
        secret = self._keys()["webhookSecret"]
        try:
            event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejectedError() from exc
        except Exception as exc:  # the signature held, the body is not an event (JSON, fields)
            raise WebhookRejectedError("The webhook's body is not a Stripe event") from exc
        data = event.to_dict()
        obj = (data.get("data") or {}).get("object")
        if (
            not isinstance(data.get("id"), str)
            or not isinstance(data.get("type"), str)
            or not isinstance(obj, dict)
        ):
            raise WebhookRejectedError("The webhook's body is not a Stripe event")
        created = data.get("created")
        at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else utcnow()
        return ProviderEvent(id=data["id"], type=data["type"], created_at=at, object=obj)

    # --- keys and client ------------------------------------------------------------------------
    def _keys(self) -> dict[str, str]:
        if not self._secret_id:
            raise PaymentsUnavailableError()
        return json_secret(self._secret_id, ("apiKey", "webhookSecret"), PaymentProviderError, "Stripe keys")

    def _client(self) -> stripe.StripeClient:
        """The client for the API key the secret holds now (a rotated key is used within
        SECRET_MAX_AGE); its `api` base address is STRIPE_API_BASE when set."""
        api_key = self._keys()["apiKey"]
        client = self._clients.get(api_key)
        if client is None:
            base = {"api": self._api_base} if self._api_base else None
            client = stripe.StripeClient(
                api_key,
                base_addresses=base,  # type: ignore[arg-type]
                max_network_retries=NETWORK_RETRIES,
                http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
            )
            self._clients = {api_key: client}
        return client


def _session(data: dict[str, Any]) -> CheckoutSession:
    metadata = data.get("metadata") or {}
    try:
        credits = int(metadata.get("credits") or 0)
    except ValueError:
        credits = 0
    payment = data.get("payment_intent")
    return CheckoutSession(
        id=str(data.get("id", "")),
        url=data.get("url"),
        status=str(data.get("status") or ""),
        payment_status=str(data.get("payment_status") or ""),
        workspace_id=str(metadata.get("workspace_id") or ""),
        pack=str(metadata.get("pack") or ""),
        credits=credits,
        amount=int(data.get("amount_total") or 0),
        currency=str(data.get("currency") or ""),
        payment_id=payment if isinstance(payment, str) else (payment or {}).get("id"),
        buyer=str(metadata.get("buyer") or ""),
    )

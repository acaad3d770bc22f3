"""Buying credits: Stripe Checkout, its webhook, and the purchases they record, in one package.

- `ports.py`: what the use cases need from outside (the payment provider, the purchase records)
  and `PaymentServices`, the context they run with;
- the use cases: `checkout.py` (the packs, a Checkout session for an owner, its state for the
  return page), `webhook.py` (a verified event → a `purchase` or `purchase_reversal` transition,
  chalicelib.lifecycle.transitions, applied once);
- the entrypoint: `routes.py` + `schemas.py` (HTTP);
- `adapters/`: the provider on Stripe's library (`stripe.py`), the records' reads on DynamoDB
  (`dynamodb.py`).

Every credit change is a lifecycle transition committed by the Repository: the grant and the
reversal carry the event's record and the purchase's in the same transaction as the credits.
Importing this package imports nothing: the API's cold start loads only what its routes use.
"""

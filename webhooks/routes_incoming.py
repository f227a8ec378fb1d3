"""``POST /webhooks/batch``: a signed incoming webhook that starts a batch job (exactly one per delivery id)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import IntegrityError

from storage.engine import session_scope
from storage.tables import WebhookDelivery
from tasks.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from webhooks.app import state
from webhooks.problems import Problem
from webhooks.routes_predict import submit

blueprint = Blueprint("incoming", __name__)


@blueprint.post("/webhooks/batch")
def batch_webhook():
    s = state()
    if s.settings.webhook_secret is None:
        raise Problem(503, "Webhooks not configured", "set SPACEGROUP_WEBHOOK_SECRET to accept signed webhooks")
    body = request.get_data(cache=True)
    signature = request.headers.get(SIGNATURE_HEADER)
    try:
        verify(s.settings.webhook_secret.get_secret_value(), body, signature, s.settings.webhook_tolerance_s)
    except SignatureError as exc:
        raise Problem(401, "Invalid signature", str(exc)) from None
    delivery_id = (request.headers.get(DELIVERY_HEADER) or "").strip()
    if not delivery_id or len(delivery_id) > 200:
        raise Problem(400, "Bad request", f"send a {DELIVERY_HEADER} header (1-200 characters) naming the delivery")
    try:
        # an exact replay carries a signature already seen: refuse it before anything else happens
        with session_scope(s.engine) as session:
            session.add(WebhookDelivery(signature=signature, delivery_id=delivery_id))
    except IntegrityError:
        raise Problem(409, "Replayed webhook", "this signed request was already received; it is not processed "
                                               "again") from None
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Problem(400, "Bad request", "the webhook body must be a JSON object with 'items'")
    summary, created = submit(data, delivery_id=delivery_id)
    summary["duplicate_delivery"] = not created
    return jsonify(summary), 202 if created else 200

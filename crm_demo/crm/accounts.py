"""Which CRM account the signed-in user acts for."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from crm_demo.crm.models import Account, Membership

SESSION_KEY = "crm_account_id"


def current_membership(request: HttpRequest) -> Membership | None:
    """The user's membership in the account chosen in the session, else their first one."""
    if not request.user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=request.user).select_related("account")
    chosen = request.session.get(SESSION_KEY)
    if chosen is not None:
        membership = memberships.filter(account_id=chosen).first()
        if membership:
            return membership
    return memberships.order_by("account__name", "account_id").first()


def current_account(request: HttpRequest) -> Account:
    """The account of this request; 404 for a user who belongs to none."""
    membership = current_membership(request)
    if membership is None:
        raise Http404("You are not a member of any CRM account.")
    return membership.account

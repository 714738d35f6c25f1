"""Forms of the request pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest

from dashboard.approvals.models import MigrationRequest
from dashboard.environments.models import Environment


class RequestForm(forms.Form):
    # People request a fleet, never one of its targets (a rollout runs those).
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.pipeline(), to_field_name="slug", empty_label=None
    )
    direction = forms.ChoiceField(
        choices=MigrationRequest.Direction.choices, initial=MigrationRequest.Direction.UPGRADE
    )
    target = forms.CharField(
        max_length=200,
        initial="heads",
        widget=forms.TextInput(attrs={"list": "target-choices", "autocomplete": "off"}),
        help_text="heads, label@head, a revision id; for a downgrade also -1, -2 or base.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=5000
    )

    @classmethod
    def for_request(cls, request: HttpRequest) -> RequestForm:
        """POST: what was sent. GET: the link's choices (defaults ``heads``, ``upgrade``).

        A link without an environment (from the graph) leaves the form unbound:
        the user picks where, and no plan is shown yet.
        """
        if request.method == "POST":
            return cls(request.POST)
        query = request.GET
        chosen = {
            "target": query.get("target") or "heads",
            "direction": query.get("direction") or MigrationRequest.Direction.UPGRADE,
        }
        if not query.get("environment"):
            return cls(initial=chosen)
        return cls({**chosen, "environment": query["environment"], "reason": ""})

    def plan_inputs(self) -> dict[str, Any]:
        """environment, direction and target (stripped) of a valid form."""
        data = self.cleaned_data
        return {
            "environment": data["environment"],
            "direction": data["direction"],
            "target": data["target"].strip(),
        }


class DecisionForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=5000,
        help_text="Required to reject.",
    )
    sql_acknowledged = forms.BooleanField(required=False, label="I have read the SQL")

    def decision(self) -> dict[str, Any]:
        """comment and sql_acknowledged as typed (also when another field was invalid)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "comment": data.get("comment", ""),
            "sql_acknowledged": bool(data.get("sql_acknowledged", False)),
        }

"""The log's filter form: GET parameters in, ``EventFilters`` out."""

from __future__ import annotations

from django import forms

from dashboard.audit.selectors import ACTION_GROUPS, KNOWN_ACTIONS, EventFilters


class AuditFilterForm(forms.Form):
    environment = forms.CharField(required=False, max_length=100)
    actor = forms.CharField(required=False, max_length=150, label="Actor (username)")
    action = forms.ChoiceField(
        required=False,
        choices=[("", "any action")]
        + [(group, group) for group in ACTION_GROUPS]
        + [(code, code) for code in KNOWN_ACTIONS],
    )
    date_from = forms.DateField(
        required=False, label="From (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    revision = forms.CharField(required=False, max_length=64)
    request = forms.IntegerField(required=False, min_value=1, label="Request #")

    def filters(self) -> EventFilters:
        """The valid filters (an invalid field is ignored and shown as an error)."""
        data = self.cleaned_data if self.is_valid() else getattr(self, "cleaned_data", {})
        return EventFilters(
            environment=(data.get("environment") or "").strip(),
            actor=(data.get("actor") or "").strip(),
            action=data.get("action") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            revision=(data.get("revision") or "").strip(),
            request_id=data.get("request"),
        )

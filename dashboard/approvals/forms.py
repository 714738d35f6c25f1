"""Forms of the request pages."""

from __future__ import annotations

from django import forms

from dashboard.approvals.models import MigrationRequest
from dashboard.environments.models import Environment


class RequestForm(forms.Form):
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="slug", empty_label=None
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


class DecisionForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=5000
    )
    sql_acknowledged = forms.BooleanField(required=False, label="I have read the SQL")

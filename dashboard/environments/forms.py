"""The plan target picker of the environment page."""

from __future__ import annotations

from django import forms

DIRECTIONS = [("upgrade", "Upgrade"), ("downgrade", "Downgrade")]


class PlanTargetForm(forms.Form):
    target = forms.CharField(
        max_length=200,
        required=False,
        initial="heads",
        help_text="heads, a revision, label@head, +1, -1 or base",
    )
    direction = forms.ChoiceField(choices=DIRECTIONS, required=False, initial="upgrade")

    def target_and_direction(self) -> tuple[str, str]:
        """The chosen target and direction; ``("heads", "upgrade")`` when unset or invalid."""
        if not self.is_bound or not self.is_valid():
            return "heads", "upgrade"
        target = (self.cleaned_data.get("target") or "heads").strip()
        return target, self.cleaned_data.get("direction") or "upgrade"

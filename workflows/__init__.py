"""Workflow declarations, one module each, and the registry built from settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from bot.config import Settings
from bot.fsm import Workflow
from workflows import (
    access_request,
    cdc_batch,
    cdc_deposit,
    certification_folder,
    partner_sync,
    trainer_invitation,
)


def build_registry(settings: Settings) -> Mapping[str, Workflow]:
    """Every workflow, with the delays chosen in the settings."""
    request = access_request.build(
        reminders=tuple(timedelta(days=d) for d in settings.access_request_reminder_days),
        expiry=timedelta(days=settings.access_request_expiry_days),
    )
    return {
        request.name: request,
        certification_folder.NAME: certification_folder.WORKFLOW,
        partner_sync.NAME: partner_sync.WORKFLOW,
        cdc_batch.NAME: cdc_batch.WORKFLOW,
        cdc_deposit.NAME: cdc_deposit.WORKFLOW,
        trainer_invitation.NAME: trainer_invitation.WORKFLOW,
    }


DEFAULT_WORKFLOWS: Mapping[str, Workflow] = {
    access_request.WORKFLOW.name: access_request.WORKFLOW,
    certification_folder.NAME: certification_folder.WORKFLOW,
    partner_sync.NAME: partner_sync.WORKFLOW,
    cdc_batch.NAME: cdc_batch.WORKFLOW,
    cdc_deposit.NAME: cdc_deposit.WORKFLOW,
    trainer_invitation.NAME: trainer_invitation.WORKFLOW,
}

"""The Magnetiq2 schema as SQLAlchemy 2.0 typed declarative models.

Contract: importing this package registers every Magnetiq2 table on :data:`metadata`
(one ``MetaData`` with a naming convention). It imports nothing of the dashboard and
nothing of Django; the Alembic project in ``migrations/`` compares against it.
"""

from magnetiq_schema.audit import AuditLog
from magnetiq_schema.base import NAMING_CONVENTION, Base, metadata
from magnetiq_schema.business import (
    BookAMeeting,
    ConsultationBooking,
    Webinar,
    WebinarRegistration,
    Whitepaper,
    WhitepaperDownload,
)
from magnetiq_schema.careers import (
    ApplicationStatusHistory,
    ApplicationUploadMetadata,
    JobApplication,
    JobApplicationAuditLog,
)
from magnetiq_schema.content import MediaFile, Page
from magnetiq_schema.i18n import (
    LanguagePreference,
    MultilingualContent,
    Translation,
    TranslationMemory,
)
from magnetiq_schema.marketplace import (
    Consultant,
    ConsultantAvailability,
    ConsultantEarning,
    ConsultantKyc,
    ConsultantPortfolio,
    ConsultantProject,
    ConsultantReview,
)
from magnetiq_schema.users import AdminUser, UserSession

__all__ = [
    "NAMING_CONVENTION",
    "AdminUser",
    "ApplicationStatusHistory",
    "ApplicationUploadMetadata",
    "AuditLog",
    "Base",
    "BookAMeeting",
    "Consultant",
    "ConsultantAvailability",
    "ConsultantEarning",
    "ConsultantKyc",
    "ConsultantPortfolio",
    "ConsultantProject",
    "ConsultantReview",
    "ConsultationBooking",
    "JobApplication",
    "JobApplicationAuditLog",
    "LanguagePreference",
    "MediaFile",
    "MultilingualContent",
    "Page",
    "Translation",
    "TranslationMemory",
    "UserSession",
    "Webinar",
    "WebinarRegistration",
    "Whitepaper",
    "WhitepaperDownload",
    "metadata",
]

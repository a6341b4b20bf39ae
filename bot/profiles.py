"""Who a Slack user is, as far as messages need it: language, time zone, name, bot or not.

`/mistake` must open its modal within Slack's 3-second trigger window, so a user's profile is
fetched with at most one `users.info` call and then cached in memory and in `user_settings`
(shared by replicas). Profiles are refreshed after `PROFILE_TTL`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import IntegrityError

from bot.db import Database
from bot.i18n import resolve_locale
from bot.models import UserSetting
from bot.types import utcnow

log = logging.getLogger(__name__)

PROFILE_TTL = timedelta(hours=12)


@dataclass(frozen=True)
class Profile:
    user_id: str
    locale: str
    tz: str | None
    real_name: str
    title: str
    is_bot: bool = False
    deleted: bool = False
    found: bool = True


class Profiles:
    """Cached Slack profiles; the only place that calls `users.info`."""

    def __init__(self, db: Database, client: WebClient, default_locale: str) -> None:
        self.db = db
        self.client = client
        self.default_locale = default_locale
        self._cache: dict[str, tuple[datetime, Profile]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str, refresh: bool = False, max_age: timedelta = PROFILE_TTL) -> Profile:
        """The user's profile, from memory, the database, or Slack (in that order).

        `max_age` bounds how old a cached answer may be (validation of a chosen manager asks
        for a recent one); `refresh` always asks Slack.
        """
        if not refresh:
            now = utcnow()
            with self._lock:
                hit = self._cache.get(user_id)
            if hit and now - hit[0] < max_age:
                return hit[1]
            stored = self._from_db(user_id, max_age)
            if stored is not None:
                self._remember(user_id, *stored)
                return stored[1]
        profile = self._from_slack(user_id)
        self._remember(user_id, utcnow(), profile)
        return profile

    def _remember(self, user_id: str, fetched_at: datetime, profile: Profile) -> None:
        with self._lock:
            self._cache[user_id] = (fetched_at, profile)

    def _from_db(
        self, user_id: str, max_age: timedelta = PROFILE_TTL
    ) -> tuple[datetime, Profile] | None:
        with self.db.read() as s:
            row = s.get(UserSetting, user_id)
            if row is None or row.profile_fetched_at is None:
                return None
            if utcnow() - row.profile_fetched_at > max_age:
                return None
            return row.profile_fetched_at, self._profile_of(row)

    def _profile_of(self, row: UserSetting) -> Profile:
        locale = row.locale_override or resolve_locale(row.slack_locale, self.default_locale)
        return Profile(
            user_id=row.user_id,
            locale=locale,
            tz=row.tz,
            real_name=row.real_name or "",
            title=row.title or "",
            is_bot=row.is_bot,
            deleted=row.deleted,
        )

    def _from_slack(self, user_id: str) -> Profile:
        try:
            resp = self.client.users_info(user=user_id, include_locale=True)
            user = resp["user"]
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("users.info failed for %s: %s", user_id, error)
            return Profile(
                user_id, self.default_locale, None, "", "", found=error != "user_not_found"
            )
        profile = user.get("profile") or {}
        values = {
            "slack_locale": user.get("locale"),
            "tz": user.get("tz"),
            "real_name": profile.get("real_name") or user.get("real_name") or user.get("name"),
            "title": profile.get("title") or "",
            "is_bot": bool(user.get("is_bot")) or user_id == "USLACKBOT",
            "deleted": bool(user.get("deleted")),
        }
        try:
            with self.db.session() as s:
                row = s.get(UserSetting, user_id)
                if row is None:
                    row = UserSetting(user_id=user_id)
                    s.add(row)
                for key, value in values.items():
                    setattr(row, key, value)
                row.profile_fetched_at = row.updated_at = utcnow()
                return self._profile_of(row)
        except IntegrityError:  # another request stored the same user at the same moment
            stored = self._from_db(user_id)
            return stored[1] if stored else self._profile_of(UserSetting(user_id=user_id, **values))

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._cache.pop(user_id, None)

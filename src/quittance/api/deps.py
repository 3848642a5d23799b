"""`Annotated` dependency aliases for endpoints."""

from typing import Annotated

from fastapi import Depends, Request

from quittance.config import Settings
from quittance.db.uow import Database


async def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]

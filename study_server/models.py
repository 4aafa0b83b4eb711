"""SQLAlchemy 2.0 typed models. The schema changes only through Alembic (``migrations/``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Experiment", "Item", "Participant", "Trial", "Response", "Event", "User", "utcnow"]


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC (stored naive-UTC by SQLite, timestamptz on PostgreSQL)."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Experiment(Base):
    """One frozen version of an experiment config."""

    __tablename__ = "experiment"
    __table_args__ = (UniqueConstraint("slug", "version", name="uq_experiment_slug_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    stimuli_path: Mapped[str] = mapped_column(Text)
    manifest_name: Mapped[str] = mapped_column(String(300))
    task: Mapped[str] = mapped_column(String(100))
    conditions: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="live")  # live, paused, closed, superseded
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    n_participants: Mapped[int] = mapped_column(Integer, default=0)  # ordinal counter, bumped under a lock

    items: Mapped[list["Item"]] = relationship(back_populates="experiment", cascade="all, delete-orphan")
    participants: Mapped[list["Participant"]] = relationship(back_populates="experiment")


class Item(Base):
    """One 2AFC question copied from the manifest; ``correct`` never leaves the server."""

    __tablename__ = "item"
    __table_args__ = (UniqueConstraint("experiment_id", "key", name="uq_item_experiment_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(300))  # the manifest's item id
    kind: Mapped[str] = mapped_column(String(16))  # main, practice, catch
    condition: Mapped[str] = mapped_column(String(100))
    family: Mapped[str] = mapped_column(String(300))
    prompt: Mapped[str] = mapped_column(Text)
    context: Mapped[list[Any]] = mapped_column(JSON)
    options: Mapped[list[Any]] = mapped_column(JSON)
    correct: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    experiment: Mapped[Experiment] = relationship(back_populates="items")


class Participant(Base):
    __tablename__ = "participant"
    __table_args__ = (
        UniqueConstraint("experiment_id", "ordinal", name="uq_participant_ordinal"),
        # one row per attempt: reload_policy 'restart' adds attempt 2, 3, ... for the same external id
        UniqueConstraint("experiment_id", "external_id", "attempt", name="uq_participant_external_attempt"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[Optional[str]] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    between_condition: Mapped[Optional[str]] = mapped_column(String(100))
    seed: Mapped[int] = mapped_column(Integer)
    # started, finished, declined, timed_out, refused, restarted
    status: Mapped[str] = mapped_column(String(16), default="started")
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    restarted_from_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("participant.id", name="fk_participant_restarted_from"))
    is_pilot: Mapped[bool] = mapped_column(Boolean, default=False)
    user_agent: Mapped[Optional[str]] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))

    experiment: Mapped[Experiment] = relationship(back_populates="participants")
    trials: Mapped[list["Trial"]] = relationship(back_populates="participant", order_by="Trial.position",
                                                 foreign_keys="Trial.participant_id")


class Trial(Base):
    __tablename__ = "trial"
    __table_args__ = (UniqueConstraint("participant_id", "position", name="uq_trial_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1-based, over all kinds
    block: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))  # practice, main, catch
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"))
    left_option: Mapped[int] = mapped_column(Integer)  # which option index appears on the left
    shown_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))

    participant: Mapped[Participant] = relationship(back_populates="trials")
    item: Mapped[Item] = relationship()
    response: Mapped[Optional["Response"]] = relationship(back_populates="trial", uselist=False)


class Response(Base):
    __tablename__ = "response"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id"), unique=True)
    chosen_side: Mapped[int] = mapped_column(Integer)
    correct: Mapped[bool] = mapped_column(Boolean)
    rt_ms: Mapped[Optional[float]] = mapped_column(Float)
    confidence: Mapped[Optional[int]] = mapped_column(Integer)
    client_time: Mapped[Optional[float]] = mapped_column(Float)
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="response")


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (Index("ix_event_participant", "participant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"))
    trial_id: Mapped[Optional[int]] = mapped_column(ForeignKey("trial.id"))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    """A researcher account for the admin pages."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

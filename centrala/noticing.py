"""The notices' wiring that `serve` and `centrala notices` share: the contact policy from the
settings and a sender per configured channel (e-mail through the SMTP server of the
settings, with its unsubscribe link; SMS through the SMPP gateway, whose delivery receipts
update the outbox and whose STOP replies opt the client out; Viber through Infobip, its
reports to our webhook), as ``usecases.notices.NoticeSetup``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from centrala.mailing import hand_over, smtp_server
from centrala.settings import Settings
from core.notices import Channel, NoticeState, is_stop, notice_email
from models.notices import Claimed, clients_of_number, opt_out, report
from sms.smpp import SmppGateway, Smsc, SmsNotSent
from usecases.notices import NoticeSetup, NotSent, Send
from viber.infobip import ViberAccount, ViberNotSent, provider_id
from viber.infobip import send as viber_send
from web.unsubscribe import unsubscribe_token
from web.viber_hooks import PATH as VIBER_HOOK

Sessions = async_sessionmaker[AsyncSession]
log = structlog.get_logger(__name__)


def email_sender(settings: Settings) -> Send:
    server = smtp_server(settings)
    secret = settings.effective_web_secret()
    base = settings.effective_public_url
    domain = settings.smtp_from.rpartition("@")[2]

    async def sending(message: Claimed) -> str:
        token = unsubscribe_token(secret, message.client_id, message.language)
        email = notice_email(
            message.id,
            sender=settings.smtp_from,
            to=message.address,
            subject=message.subject,
            text=message.body,
            html_body=message.html,
            unsubscribe_url=f"{base}/unsubscribe/{token}",
            language=message.language,
            now=datetime.now(UTC),
            domain=domain,
        )
        return await hand_over(server, email)

    return sending


def sms_gateway(settings: Settings, sessions: Sessions) -> SmppGateway:
    """The SMPP gateway of the settings: its receipts applied to the outbox (forward only),
    a client's STOP (from a number of theirs) an opt-out of SMS and Viber."""

    async def on_report(provider_id: str, state: str, at: datetime, error: str | None) -> None:
        known = await report(sessions, provider_id, NoticeState(state), at, error)
        log.info("sms_report", provider_id=provider_id, state=state, known=known)

    async def on_reply(sender: str, text: str, at: datetime) -> None:
        if not is_stop(text):
            log.info("sms_reply_ignored", sender=sender, length=len(text))
            return
        clients = await clients_of_number(sessions, sender, settings.default_region)
        for client_id in clients:
            for channel in (Channel.SMS, Channel.VIBER):
                await opt_out(sessions, client_id, channel, at, "stop_reply")
        log.info("sms_stop", sender=sender, clients=len(clients))

    smsc = Smsc(
        host=settings.sms_smpp_host or "",
        port=settings.sms_smpp_port,
        system_id=settings.sms_smpp_system_id,
        password=settings.sms_smpp_password,
        system_type=settings.sms_smpp_system_type,
        source_address=settings.sms_source_address,
        max_parts=settings.sms_max_parts,
        timeout=settings.sms_timeout_seconds,
        enquire_link_interval=settings.sms_enquire_link_seconds,
        reconnect_max=settings.sms_reconnect_max_seconds,
        receipt_zone=ZoneInfo(settings.sms_smsc_time_zone),
    )
    return SmppGateway(smsc, on_report, on_reply)


def sms_sender(gateway: SmppGateway) -> Send:
    async def sending(message: Claimed) -> str:
        try:
            sent = await gateway.send(message.address, message.body, str(message.id))
        except SmsNotSent as exc:
            raise NotSent(exc.reason, retry=exc.retry) from exc
        return sent.provider_id

    return sending


def viber_account(settings: Settings) -> ViberAccount | None:
    """Infobip's account of the settings (None: no base URL or key), its delivery reports
    to our webhook when a callback token is set."""
    if not (settings.viber_base_url and settings.viber_api_key):
        return None
    token = settings.viber_callback_token
    return ViberAccount(
        base_url=settings.viber_base_url,
        api_key=settings.viber_api_key,
        sender=settings.viber_sender,
        validity_seconds=settings.viber_validity_seconds,
        notify_url=settings.effective_public_url + VIBER_HOOK.format(token=token)
        if token
        else None,
        timeout=settings.viber_timeout_seconds,
    )


def viber_sender(account: ViberAccount) -> Send:
    async def sending(message: Claimed) -> str:
        try:
            return await viber_send(account, provider_id(message.id), message.address, message.body)
        except ViberNotSent as exc:
            raise NotSent(exc.reason, retry=exc.retry) from exc

    return sending


def notice_setup(settings: Settings, gateway: SmppGateway | None = None) -> NoticeSetup:
    """The policy and the senders: e-mail with an SMTP host, SMS with a started gateway,
    Viber with Infobip's base URL and key (and its wait before the fallback to SMS)."""
    senders: dict[Channel, Send] = {}
    if settings.smtp_host:
        senders[Channel.EMAIL] = email_sender(settings)
    if gateway is not None:
        senders[Channel.SMS] = sms_sender(gateway)
    account = viber_account(settings)
    if account is not None:
        senders[Channel.VIBER] = viber_sender(account)
    return NoticeSetup(
        settings.notice_policy,
        senders,
        workers=settings.notices_workers,
        lease=timedelta(seconds=settings.notices_lease_seconds),
        letters=settings.letters_queue,
        fallback_after=timedelta(
            seconds=settings.viber_validity_seconds + settings.viber_report_grace_seconds
        ),
    )

"""Is this address ready to send this TRC20 transfer, and if not, what must it buy?

The recipe is transfer.md §1, read from the chain every time:

1. ``getchainparameters``: the energy price, the bandwidth price, the maximum fee_limit and the
   free bandwidth (cached for ``PARAMETERS_TTL`` seconds; they change only at a maintenance, every
   6 h, and never are hard-coded here);
2. ``getaccount`` (activated? TRX balance) and ``getaccountresource`` (energy and bandwidth
   left, already recovered to the head block by the node: not decayed again here);
3. ``triggerconstantcontract`` on ``/wallet/`` (head state) simulates the very transfer. Its
   ``energy_used`` already includes the dynamic-energy penalty (never add ``energy_penalty``).
   A failed simulation is a transfer that would revert and is never priced;
4. ``estimateenergy`` where the node offers it (off by default in java-tron): its
   ``energy_required`` is "guaranteed sufficient" as a fee_limit, so the fee_limit is never
   below it; the energy to buy stays the simulation's figure (``energy_required`` overstates by
   up to 1 TRX of energy).

The one fact users trip on: **fee_limit caps all the energy a call may use, rented energy
included** (java-tron ``VMActuator``: ``min(energy left + balance/price, fee_limit/price)``).
A transfer with enough rented energy still fails OUT_OF_ENERGY under a low fee_limit, and the
rented energy is consumed. The fee_limit given here is ``ceil(E * 1.2) * price`` (capped by the
chain's maximum): the margin covers one dynamic-energy step up at a maintenance and costs nothing
on success, since only the energy actually used is ever burned.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from energy_async import abi
from energy_async._http import CallMeter
from energy_async.address import validate_address
from energy_async.errors import (
    BadResponse,
    EnergyError,
    InputError,
    NodeError,
    TokenNotFound,
)
from energy_async.models import ENERGY_PER_TRANSFER, DeliveryResult
from energy_async.providers._base import MIN_ENERGY

if TYPE_CHECKING:
    from energy_async.coordinator import Coordinator
    from energy_async.providers import Provider
    from energy_async.verifier import Verifier

__all__ = [
    "FEE_LIMIT_MARGIN",
    "PARAMETERS_TTL",
    "USDT",
    "ChainParameters",
    "Purchase",
    "ReadinessChecker",
    "ReadyState",
    "SenderPlan",
    "TransferPurchase",
    "TransferReadiness",
    "buy_for_transfer",
    "buy_missing",
    "fee_limit_for",
    "judge",
    "parse_amount",
    "plan_payouts",
    "plan_purchase",
    "plan_sender",
    "render_readiness",
    "transfer_bytes",
]

USDT: Final = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"  # USDT on TRON mainnet (transfer.md §1)
FEE_LIMIT_MARGIN: Final = Fraction(6, 5)  # x1.2, like Gem; Vultisig uses 1.3 (transfer.md §8)
# Parameters change only at a maintenance (every 6 h) by proposal; 10 minutes bounds how long a
# just-passed proposal (a new energy price) can go unseen, at one call per 10 minutes.
PARAMETERS_TTL: Final = 600.0
# A single-signature TRC20 transfer's raw_data without fee_limit (transfer.md §5.1); used only
# when the node's simulation carries no raw_data_hex to measure.
_RAW_TRANSFER_BYTES: Final = 205
_SIGNATURE_FIELD: Final = 67  # tag, length, 65-byte signature
_MAX_RESULT_SIZE_IN_TX: Final = 64  # java-tron adds it to every transaction's size
_REVERT_SELECTOR: Final = "08c379a0"  # Error(string)
_NO_ESTIMATE: Final = "does not support estimate energy"
_MAX_DECIMALS: Final = 77  # 10**77 < 2**256 <= 10**78: a uint256 cannot hold more

Amount = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class ReadyState(enum.StrEnum):
    """The one-word answer; ``problems`` says why when it is not READY."""

    READY = "READY"  # it would succeed as it stands, burning no TRX for energy
    NOT_READY = "NOT_READY"  # energy, bandwidth, TRX or fee_limit: see problems
    WOULD_REVERT = "WOULD_REVERT"  # the node's simulation fails: not priced, do not send
    NOT_ACTIVATED = "NOT_ACTIVATED"  # the sender does not exist on chain: it cannot send


class ChainParameters(msgspec.Struct, frozen=True, kw_only=True):
    """What readiness needs from ``getchainparameters``, all in sun (bandwidth in bytes)."""

    energy_fee: int  # getEnergyFee: sun per energy unit burned
    transaction_fee: int  # getTransactionFee: sun per bandwidth byte burned
    max_fee_limit: int  # getMaxFeeLimit
    read_at: float  # time.time() when read


class TransferReadiness(msgspec.Struct, frozen=True, kw_only=True):
    """One answer with its evidence (transfer.md §1). Energy in units, TRX in sun."""

    state: ReadyState
    sender: str
    receiver: str
    token: str
    amount: int  # base units
    decimals: int
    activated: bool
    balance_sun: int
    energy_needed: int  # the simulation's energy_used, penalty included; 0 when it reverts
    energy_penalty: int  # of which the dynamic-energy penalty
    energy_required: int | None  # estimateenergy's answer, None where the node has none
    energy_available: int
    energy_missing: int
    bandwidth_needed: int  # bytes of the signed transaction with its fee_limit
    bandwidth_staked: int  # NetLimit - NetUsed
    bandwidth_free: int  # freeNetLimit - freeNetUsed
    bandwidth_burn_sun: int  # what the bandwidth costs in TRX as it stands (0 if covered)
    energy_price_sun: int
    bandwidth_price_sun: int
    max_fee_limit_sun: int
    trx_burn_sun: int  # burned if sent as it stands and it succeeds: bandwidth + missing energy
    would_succeed: bool  # as it stands, burning TRX where energy or bandwidth is short
    fee_limit_sun: int | None  # what to set; None when no fee_limit can make it land
    fee_limit_margin: float
    revert_message: str | None = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    calls: int = 0
    read_at: float = 0.0

    @property
    def ready(self) -> bool:
        return self.state is ReadyState.READY


class Purchase(msgspec.Struct, frozen=True, kw_only=True):
    """What to order for a shortfall: exactly one of ``energy`` / ``transfers``."""

    energy: int | None = None
    transfers: int | None = None


class TransferPurchase(msgspec.Struct, frozen=True, kw_only=True):
    """``buy_for_transfer``'s answer: readiness before, the order's verdict, readiness after."""

    before: TransferReadiness
    purchase: Purchase | None  # None: nothing was bought
    result: DeliveryResult | None
    after: TransferReadiness | None  # None only when the chain could not be read after buying
    after_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.after is not None and self.after.ready


# --- pure decisions ----------------------------------------------------------------------------


def parse_amount(amount: str | Decimal | int, decimals: int) -> int:
    """Token units (``"12.5"``) to base units; refuses more decimals than the token has."""
    value = _token_units(amount)
    base = value.scaleb(decimals)
    if base != base.to_integral_value():
        raise InputError(f"amount {amount} has more decimals than the token's {decimals}")
    units = int(base)
    if units > abi.MAX_UINT256:
        raise InputError(f"amount {amount} does not fit a uint256")
    return units


def _token_units(amount: str | Decimal | int) -> Decimal:
    """The amount as a positive finite Decimal (floats refused: 0.1 is not exact in binary)."""
    if isinstance(amount, bool) or not isinstance(amount, str | Decimal | int):
        raise InputError(
            f"amount must be a str, Decimal or int of token units, not {type(amount).__name__}"
        )
    if isinstance(amount, str) and not (amount.isascii() and "_" not in amount):
        # Decimal() also takes "1_000" and other scripts' digits, which a file of payouts
        # never means; "1E+3" (how str(Decimal) may print) stays an amount.
        raise InputError(f"amount must be written in the digits 0-9, e.g. 12.5: {amount[:40]!r}")
    try:
        value = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except InvalidOperation:
        raise InputError(f"amount is not a number: {str(amount)[:40]!r}") from None
    if not value.is_finite() or value <= 0:
        raise InputError(f"amount must be a positive number of token units, got {amount}")
    return value


def fee_limit_for(energy: int, energy_required: int | None, params: ChainParameters) -> int | None:
    """``ceil(E * 1.2) * price``, never below estimateenergy's guarantee, capped by the chain's
    maximum; ``None`` when even ``E * price`` is above that maximum (nothing can make it land)."""
    needed = energy * params.energy_fee
    if needed > params.max_fee_limit:
        return None
    units = max(math.ceil(energy * FEE_LIMIT_MARGIN), energy_required or 0)
    return min(params.max_fee_limit, units * params.energy_fee)


def transfer_bytes(raw_without_fee_limit: int, fee_limit: int) -> int:
    """Bandwidth of the signed single-signature transaction (java-tron BandwidthProcessor).

    The simulation's raw_data lacks fee_limit: add its field (tag 2 bytes + varint). Then the
    signed size is the raw field (tag, length varint, bytes) and one 67-byte signature field,
    plus the 64 bytes java-tron adds for the result. A 205-byte raw transfer with a fee_limit of
    2.1 to 268 TRX gives 345, the mainnet receipts' ``net_usage``.
    """
    raw = raw_without_fee_limit + (2 + _varint_len(fee_limit) if fee_limit else 0)
    return raw + 1 + _varint_len(raw) + _SIGNATURE_FIELD + _MAX_RESULT_SIZE_IN_TX


def plan_purchase(missing: int, provider: Provider | None) -> Purchase | None:
    """What to order for ``missing`` energy: nothing, ``energy`` rounded up to the providers'
    minimum, or Mefree's ``transfers`` count where it buys exactly that same energy (never
    with ``provider=None``: an order a router may send to any provider is in energy).

    A count of n is n x 65,000 energy in this library's accounting; it is chosen only where that
    equals the quantity order (a shortfall up to 65,000, or a multiple of it). Whether a count
    is cheaper than the same quantity is not documented by Mefree, so price never decides here.
    """
    if missing <= 0:
        return None
    energy = max(MIN_ENERGY, missing)
    if provider is not None and provider.supports_transfers and energy % ENERGY_PER_TRANSFER == 0:
        return Purchase(transfers=energy // ENERGY_PER_TRANSFER)
    return Purchase(energy=energy)


def judge(
    *,
    sender: str,
    receiver: str,
    token: str,
    amount: int,
    decimals: int,
    params: ChainParameters,
    account: _Account,
    resources: _Resources,
    simulation: _Simulation,
    energy_required: int | None,
    notes: tuple[str, ...] = (),
    calls: int = 0,
) -> TransferReadiness:
    """The recipe's verdict from what the chain said (transfer.md §1, steps 5-8)."""
    activated = account.address is not None
    balance = account.balance
    price = params.energy_fee
    available = max(0, resources.energy_limit - resources.energy_used)
    staked_net = max(0, resources.net_limit - resources.net_used)
    free_net = max(0, resources.free_net_limit - resources.free_net_used)
    reverted, message = _simulation_failure(simulation)
    energy = 0 if reverted else simulation.energy_used
    fee_limit = None if reverted else fee_limit_for(energy, energy_required, params)
    raw = len(simulation.transaction.raw_data_hex) // 2 if simulation.transaction else 0
    size = transfer_bytes(raw or _RAW_TRANSFER_BYTES, fee_limit or 0)
    # Each source pays all or nothing (BandwidthProcessor): 300 free bytes do not pay 345.
    covered = staked_net >= size or free_net >= size
    net_burn = 0 if covered else size * params.transaction_fee
    missing = max(0, energy - available)
    from_trx = max(0, balance - net_burn) // price
    problems: list[str] = []
    if not activated:
        problems.append(
            f"{sender} is not activated: it cannot send (a TRX transfer to it activates it)"
        )
    if reverted:
        problems.append(
            f"the transfer would revert ({message}): token balance too low, token paused or "
            "sender blacklisted; it is not priced and must not be sent"
        )
    else:
        if fee_limit is None:
            problems.append(
                f"it needs {energy:,} energy = {_trx(energy * price)} TRX of fee_limit, above "
                f"the chain's maximum fee_limit of {_trx(params.max_fee_limit)} TRX"
            )
        if missing:
            problems.append(
                f"energy: needs {energy:,}, has {available:,}: {missing:,} missing "
                f"(buy it, or {_trx(missing * price)} TRX would be burned)"
            )
        if balance < net_burn:
            problems.append(
                f"bandwidth: needs {size} bytes, has {staked_net} staked and {free_net} free, "
                f"and the {_trx(balance)} TRX balance cannot pay the {_trx(net_burn)} TRX burn"
            )
        elif missing > from_trx:
            problems.append(
                f"TRX: the balance can burn for {from_trx:,} energy but {missing:,} are missing: "
                "it would fail OUT_OF_ENERGY"
            )
    would_succeed = (
        activated
        and not reverted
        and fee_limit is not None
        and balance >= net_burn
        and available + from_trx >= energy
    )
    if not activated:
        state = ReadyState.NOT_ACTIVATED
    elif reverted:
        state = ReadyState.WOULD_REVERT
    elif would_succeed and not missing:
        state = ReadyState.READY
    else:
        state = ReadyState.NOT_READY
    return TransferReadiness(
        state=state,
        sender=sender,
        receiver=receiver,
        token=token,
        amount=amount,
        decimals=decimals,
        activated=activated,
        balance_sun=balance,
        energy_needed=energy,
        energy_penalty=0 if reverted else simulation.energy_penalty,
        energy_required=energy_required,
        energy_available=available,
        energy_missing=missing,
        bandwidth_needed=size,
        bandwidth_staked=staked_net,
        bandwidth_free=free_net,
        bandwidth_burn_sun=net_burn,
        energy_price_sun=price,
        bandwidth_price_sun=params.transaction_fee,
        max_fee_limit_sun=params.max_fee_limit,
        trx_burn_sun=net_burn + missing * price,
        would_succeed=would_succeed,
        fee_limit_sun=fee_limit,
        fee_limit_margin=float(FEE_LIMIT_MARGIN),
        revert_message=message,
        problems=tuple(problems),
        notes=notes,
        calls=calls,
        read_at=time.time(),
    )


def _simulation_failure(simulation: _Simulation) -> tuple[bool, str | None]:
    """java-tron's test for a good simulation (Wallet.java): result true, no message, and the
    transaction not marked FAILED; the revert reason from ``constant_result`` when given."""
    result = simulation.result
    rets = simulation.transaction.ret if simulation.transaction else []
    failed = bool(rets) and rets[0].ret == "FAILED"
    if result.result and not result.message and not failed:
        return False, None
    message = result.message or "the simulation failed"
    reason = _revert_reason(simulation.constant_result)
    return True, f"{message}: {reason}" if reason else message


def _revert_reason(constant_result: list[str]) -> str | None:
    """The ``Error(string)`` reason a reverting contract gave, if any."""
    if not constant_result or not constant_result[0].startswith(_REVERT_SELECTOR):
        return None
    try:
        data = bytes.fromhex(constant_result[0][len(_REVERT_SELECTOR) :])
        length = int.from_bytes(data[32:64], "big")
        return data[64 : 64 + length].decode("utf-8", "replace")[:200] or None
    except ValueError:
        return None


def _varint_len(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _trx(sun: int) -> str:
    return f"{Decimal(sun).scaleb(-6).normalize():f}"


# --- wire shapes (java-tron omits zero fields: everything has a default) -----------------------


class _Parameter(msgspec.Struct):
    key: str
    value: int = 0


class _Parameters(msgspec.Struct, rename={"entries": "chainParameter", "error": "Error"}):
    entries: list[_Parameter] = []
    error: str | None = None


class _Account(msgspec.Struct, rename={"error": "Error"}):
    address: str | None = None  # absent: `{}`, an unknown or unactivated account
    balance: Amount = 0
    error: str | None = None


class _Resources(msgspec.Struct, rename="pascal"):
    free_net_used: Amount = msgspec.field(default=0, name="freeNetUsed")
    free_net_limit: Amount = msgspec.field(default=0, name="freeNetLimit")
    net_used: Amount = 0
    net_limit: Amount = 0
    energy_used: Amount = 0
    energy_limit: Amount = 0
    error: str | None = None


class _Return(msgspec.Struct):
    result: bool = False
    code: str | None = None  # absent means SUCCESS (enum default)
    message: str | None = None


class _Ret(msgspec.Struct):
    ret: str | None = None


class _SimulatedTx(msgspec.Struct):
    ret: list[_Ret] = []
    raw_data_hex: str = ""


class _Simulation(msgspec.Struct, rename={"error": "Error"}):
    result: _Return = msgspec.field(default_factory=_Return)
    energy_used: Amount = 0
    energy_penalty: Amount = 0
    constant_result: list[str] = []
    transaction: _SimulatedTx | None = None
    error: str | None = None


class _Estimate(msgspec.Struct, rename={"error": "Error"}):
    result: _Return = msgspec.field(default_factory=_Return)
    energy_required: Amount = 0
    error: str | None = None


_PARAMETERS = msgspec.json.Decoder(_Parameters)
_ACCOUNT = msgspec.json.Decoder(_Account)
_RESOURCES = msgspec.json.Decoder(_Resources)
_SIMULATION = msgspec.json.Decoder(_Simulation)
_ESTIMATE = msgspec.json.Decoder(_Estimate)
_NEEDED_PARAMETERS = {
    "getEnergyFee": "energy_fee",
    "getTransactionFee": "transaction_fee",
    "getMaxFeeLimit": "max_fee_limit",
}


# --- reading the chain --------------------------------------------------------------------------


class ReadinessChecker:
    """Reads what readiness needs through a :class:`Verifier` (its retries, limiter, errors).

    Chain parameters are cached for ``parameters_ttl`` seconds and a token's ``decimals()`` for
    the checker's life (a deployed TRC20's decimals do not change). Whether the node offers
    ``estimateenergy`` is learnt once: a node that says it does not is not asked again.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        parameters_ttl: float = PARAMETERS_TTL,
        use_estimateenergy: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if parameters_ttl < 0:
            raise InputError("parameters_ttl must not be negative")
        self.verifier = verifier
        self.parameters_ttl = parameters_ttl
        self._clock = clock
        self._estimate = use_estimateenergy
        self._parameters: tuple[float, ChainParameters] | None = None
        self._decimals: dict[str, int] = {}

    async def chain_parameters(self, *, meter: CallMeter | None = None) -> ChainParameters:
        """``getchainparameters``, from the cache while it is younger than the TTL."""
        now = self._clock()
        if self._parameters is not None and now - self._parameters[0] < self.parameters_ttl:
            return self._parameters[1]
        path = "/wallet/getchainparameters"
        reply = await self.verifier.read(path, {"visible": True}, _PARAMETERS, meter=meter)
        values = {entry.key: entry.value for entry in reply.entries}
        missing = [key for key in _NEEDED_PARAMETERS if key not in values]
        if missing:
            raise BadResponse(f"getchainparameters lacks {', '.join(missing)}", path=path)
        if values["getEnergyFee"] <= 0 or values["getMaxFeeLimit"] <= 0:
            raise BadResponse("getchainparameters: getEnergyFee/getMaxFeeLimit not positive")
        fields: dict[str, Any] = {name: values[key] for key, name in _NEEDED_PARAMETERS.items()}
        params = ChainParameters(**fields, read_at=time.time())
        self._parameters = (now, params)
        return params

    async def decimals(self, token: str, *, meter: CallMeter | None = None) -> int:
        """The token's ``decimals()``, read from the chain once per checker."""
        token = validate_address(token)
        if token not in self._decimals:
            simulation = await self._simulate(token, token, abi.DECIMALS, "", meter)
            failed, message = _simulation_failure(simulation)
            if failed or not simulation.constant_result:
                raise TokenNotFound(
                    f"{token} answers no decimals(): not a TRC20 token ({message or 'no result'})"
                )
            value = abi.decode_uint256(simulation.constant_result[0][:64])
            if value > _MAX_DECIMALS:
                raise TokenNotFound(f"{token} says decimals() = {value}: not a TRC20 token")
            self._decimals[token] = value
        return self._decimals[token]

    async def check(
        self,
        sender: str,
        receiver: str,
        amount: str | Decimal | int,
        *,
        token: str = USDT,
        meter: CallMeter | None = None,
    ) -> TransferReadiness:
        """Readiness of ``sender`` to send ``amount`` (token units) of ``token`` to ``receiver``.

        Raises `InputError` (bad address or amount, `TokenNotFound`) with nothing bought, and
        the verifier's typed errors when the node cannot answer.
        """
        sender = validate_address(sender)
        receiver = validate_address(receiver)
        token = validate_address(token)
        _token_units(amount)  # its form, before anything is read
        meter = meter or CallMeter()
        params = await self.chain_parameters(meter=meter)
        decimals = await self.decimals(token, meter=meter)
        units = parse_amount(amount, decimals)
        payload = {"address": sender, "visible": True}
        account = await self.verifier.read("/wallet/getaccount", payload, _ACCOUNT, meter=meter)
        resources = await self.verifier.read(
            "/wallet/getaccountresource", payload, _RESOURCES, meter=meter
        )
        parameter = abi.encode_transfer(receiver, units)
        simulation = await self._simulate(sender, token, abi.TRANSFER, parameter, meter)
        notes: list[str] = []
        energy_required = None
        reverted, _ = _simulation_failure(simulation)
        if self._estimate and not reverted:
            energy_required = await self._estimate_energy(sender, token, parameter, meter, notes)
        return judge(
            sender=sender,
            receiver=receiver,
            token=token,
            amount=units,
            decimals=decimals,
            params=params,
            account=account,
            resources=resources,
            simulation=simulation,
            energy_required=energy_required,
            notes=tuple(notes),
            calls=meter.calls,
        )

    async def _simulate(
        self, owner: str, token: str, selector: str, parameter: str, meter: CallMeter | None
    ) -> _Simulation:
        path = "/wallet/triggerconstantcontract"
        payload = _call_payload(owner, token, selector, parameter)
        simulation = await self.verifier.read(path, payload, _SIMULATION, meter=meter)
        code, message = simulation.result.code, simulation.result.message or ""
        if code == "CONTRACT_VALIDATE_ERROR" and "not exist" in message:
            raise TokenNotFound(f"no contract at token address {token}", path=path)
        if code is not None and code != "SUCCESS":
            raise NodeError(
                "TronGrid could not simulate the call", provider_message=message[:200], path=path
            )
        return simulation

    async def _estimate_energy(
        self, owner: str, token: str, parameter: str, meter: CallMeter | None, notes: list[str]
    ) -> int | None:
        """estimateenergy's ``energy_required``, or None (with a note) where it has none."""
        path = "/wallet/estimateenergy"
        payload = _call_payload(owner, token, abi.TRANSFER, parameter)
        try:
            reply = await self.verifier.read(path, payload, _ESTIMATE, meter=meter)
        except EnergyError as error:  # optional: the simulation already answered
            notes.append(f"estimateenergy unavailable: {type(error).__name__}")
            return None
        message = reply.result.message or ""
        if _NO_ESTIMATE in message:
            self._estimate = False
            notes.append("this node does not offer estimateenergy; triggerconstantcontract only")
            return None
        if not reply.result.result or not reply.energy_required:
            notes.append(f"estimateenergy gave no figure ({reply.result.code}: {message[:80]})")
            return None
        return reply.energy_required


def _call_payload(owner: str, token: str, selector: str, parameter: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "owner_address": owner,
        "contract_address": token,
        "function_selector": selector,
        "visible": True,
    }
    if parameter:
        payload["parameter"] = parameter
    return payload


# --- buying for a transfer ----------------------------------------------------------------------


async def buy_for_transfer(
    coordinator: Coordinator,
    *,
    sender: str,
    receiver: str,
    amount: str | Decimal | int,
    token: str = USDT,
    duration: str = "1h",
    client_order_id: str | None = None,
    deadline: float = 120.0,
    checker: ReadinessChecker | None = None,
) -> TransferPurchase:
    """Buy exactly the energy ``sender`` lacks for this transfer from ``coordinator``'s
    provider, verify it, and re-read (see `buy_missing`)."""

    async def buy(purchase: Purchase) -> DeliveryResult:
        return await coordinator.buy(
            target=sender,
            energy=purchase.energy,
            transfers=purchase.transfers,
            duration=duration,
            client_order_id=client_order_id,
            deadline=deadline,
        )

    provider = coordinator.session.provider
    # The order's own terms are checked before the chain is read: bad input is refused as
    # such, whatever the transfer turns out to need (nothing is sent by prepare).
    coordinator.session.prepare(
        target=sender, energy=MIN_ENERGY, duration=duration, client_order_id=client_order_id
    )
    return await buy_missing(
        checker or ReadinessChecker(coordinator.verifier),
        sender=sender,
        receiver=receiver,
        amount=amount,
        token=token,
        plan=lambda missing: plan_purchase(missing, provider),
        buy=buy,
    )


async def buy_missing(
    checker: ReadinessChecker,
    *,
    sender: str,
    receiver: str,
    amount: str | Decimal | int,
    token: str,
    plan: Callable[[int], Purchase | None],
    buy: Callable[[Purchase], Awaitable[DeliveryResult]],
) -> TransferPurchase:
    """Read readiness, buy what ``plan`` makes of the shortfall through ``buy``, read again.

    Nothing is bought when nothing is missing, or when energy alone cannot make it land: the
    transfer would revert, the sender is not activated (it could not even receive a
    delegation), no fee_limit is high enough, or its TRX cannot pay the bandwidth (rented energy
    would expire unused while that is fixed). Otherwise the shortfall, rounded up by ``plan`` to
    what the provider sells, goes through ``buy`` (a coordinator's or a router's: the same
    verdict and evidence), and readiness is read again: READY, or what is still missing (a
    delegation worth a few units less than ordered after TotalEnergyWeight drift shows up
    here, to be burned at the energy price or topped up). Errors reading the chain before the
    order raise (nothing was bought); after it, they land in ``after_error`` next to the
    verdict.
    """
    before = await checker.check(sender, receiver, amount, token=token)
    buyable = (
        before.state is ReadyState.NOT_READY
        and before.fee_limit_sun is not None
        and before.balance_sun >= before.bandwidth_burn_sun
    )
    purchase = plan(before.energy_missing)
    if not buyable or purchase is None:
        return TransferPurchase(before=before, purchase=None, result=None, after=before)
    result = await buy(purchase)
    try:
        after = await checker.check(sender, receiver, amount, token=token)
    except EnergyError as error:  # bought already: report the verdict, never raise it away
        return TransferPurchase(
            before=before, purchase=purchase, result=result, after=None, after_error=str(error)
        )
    return TransferPurchase(before=before, purchase=purchase, result=result, after=after)


# --- many transfers: a payout list becomes exact purchases, one per sender ----------------------


class SenderPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What one sender's transfers need together, and what to buy for them."""

    sender: str
    transfers: tuple[TransferReadiness, ...]  # each read against the chain as it is now
    energy_needed: int  # the sum: every transfer spends its own energy
    energy_available: int
    energy_missing: int
    bandwidth_burn_sun: int  # the transfers' bandwidth beyond what staked and free bytes cover
    purchase: Purchase | None  # None: nothing to buy, or energy alone cannot help (problems)
    problems: tuple[str, ...] = ()


def plan_sender(sender: str, transfers: list[TransferReadiness], provider: Provider) -> SenderPlan:
    """Sum one sender's transfers: energy adds up; staked and free bandwidth cover whole
    transfers in turn (all or nothing each) and the rest burns TRX.

    Each transfer is simulated against the present state, so two transfers to one receiver that
    holds no token are both priced as to a new holder (an overestimate, never a shortfall). The
    token balance is checked per transfer, not for their sum.
    """
    first = transfers[0]
    staked, free = first.bandwidth_staked, first.bandwidth_free
    burn = 0
    for transfer in transfers:
        if staked >= transfer.bandwidth_needed:
            staked -= transfer.bandwidth_needed
        elif free >= transfer.bandwidth_needed:
            free -= transfer.bandwidth_needed
        else:
            burn += transfer.bandwidth_needed * transfer.bandwidth_price_sun
    needed = sum(transfer.energy_needed for transfer in transfers)
    missing = max(0, needed - first.energy_available)
    problems = [
        f"to {t.receiver}: {t.state}: {'; '.join(t.problems)}"
        for t in transfers
        if t.state in (ReadyState.WOULD_REVERT, ReadyState.NOT_ACTIVATED) or t.fee_limit_sun is None
    ]
    if first.balance_sun < burn:
        problems.append(
            f"bandwidth: {len(transfers)} transfers burn {_trx(burn)} TRX of bandwidth, "
            f"the balance is {_trx(first.balance_sun)} TRX"
        )
    return SenderPlan(
        sender=sender,
        transfers=tuple(transfers),
        energy_needed=needed,
        energy_available=first.energy_available,
        energy_missing=missing,
        bandwidth_burn_sun=burn,
        purchase=None if problems else plan_purchase(missing, provider),
        problems=tuple(problems),
    )


async def plan_payouts(
    checker: ReadinessChecker,
    provider: Provider,
    payouts: Iterable[tuple[str, str, str | Decimal | int]],
    *,
    token: str = USDT,
) -> list[SenderPlan]:
    """``(sender, receiver, amount)`` rows to one plan per sender, in first-seen order.

    Reads each transfer's readiness (three TronGrid calls each once parameters and decimals are
    known); nothing is bought here.
    """
    by_sender: dict[str, list[TransferReadiness]] = {}
    for sender, receiver, amount in payouts:
        reading = await checker.check(sender, receiver, amount, token=token)
        by_sender.setdefault(reading.sender, []).append(reading)
    return [plan_sender(sender, found, provider) for sender, found in by_sender.items()]


# --- what people read -----------------------------------------------------------------------------


def render_readiness(ready: TransferReadiness) -> str:
    """The readiness table for a terminal (stderr)."""
    amount = Decimal(ready.amount).scaleb(-ready.decimals).normalize()
    lines = [
        f"{ready.state}: {ready.sender} sending {amount:f} of token {ready.token} "
        f"to {ready.receiver}",
        f"  energy     needs {ready.energy_needed:,} (dynamic penalty {ready.energy_penalty:,}"
        f" included), available {ready.energy_available:,}, missing {ready.energy_missing:,}",
        f"  bandwidth  needs {ready.bandwidth_needed} bytes; staked {ready.bandwidth_staked:,},"
        f" free {ready.bandwidth_free:,}; burns {_trx(ready.bandwidth_burn_sun)} TRX",
        f"  prices     {ready.energy_price_sun} sun/energy, {ready.bandwidth_price_sun} sun/byte"
        f" (getchainparameters); TRX balance {_trx(ready.balance_sun)}",
        f"  as it is   would succeed, burning {_trx(ready.trx_burn_sun)} TRX"
        if ready.would_succeed
        else "  as it is   would FAIL: do not send it yet",
    ]
    if ready.energy_required is not None:
        lines.append(f"  estimate   estimateenergy says {ready.energy_required:,}")
    if ready.fee_limit_sun is not None:
        lines.append(
            f"  fee_limit  set {ready.fee_limit_sun:,} sun ({_trx(ready.fee_limit_sun)} TRX):"
            " it caps ALL the energy the transfer may use, rented energy included"
        )
    lines.extend(f"  - {problem}" for problem in ready.problems)
    lines.extend(f"  note: {note}" for note in ready.notes)
    return "\n".join(lines)

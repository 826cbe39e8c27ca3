"""TRC20 tokens and per-account resource usage on the sandbox chain: what a USDT transfer costs.

Built from the reference (transfer.md) and java-tron's documented behaviour, never from the
client. What it models:

- tokens with balances; ``transfer`` costs the two documented mainnet figures, 64,285 energy
  when the receiver holds the token and 130,285 when it does not (a new non-zero storage slot,
  java-tron ``EnergyCost.SET_SSTORE``), each with its dynamic-energy penalty at USDT's max
  factor 3.4 (49,635 / 100,635), and the penalty is *included* in ``energy_used``;
- a transfer that would revert (balance too low, token paused, sender blacklisted, a malformed
  address word) answers ``REVERT opcode executed`` with ``transaction.ret[0].ret == "FAILED"``;
- energy, staked bandwidth and free bandwidth usage per account, recovering linearly over the
  24 h window exactly as ``ResourceProcessor`` computes it (x 1e6 fixed point);
- executing a transfer the way java-tron charges it: bandwidth first (staked, else free, else
  burned, each all-or-nothing), then energy capped by ``fee_limit`` whatever its source;
- ``getchainparameters`` values (mainnet, transfer.md §7) that tests may change.

The view calls' energy (``decimals()``, ``balanceOf``) is illustrative: 935 is the Nile capture
in java-tron's docs for ``balanceOf``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from energy_async.sandbox.base58 import decode_address, encode_address
from energy_async.sandbox.chain import _pb_bytes, _pb_int

if TYPE_CHECKING:
    from energy_async.sandbox.chain import Chain

__all__ = [
    "CHAIN_PARAMETERS",
    "ENERGY_TO_HOLDER",
    "ENERGY_TO_NEW_HOLDER",
    "USDT",
    "WINDOW_SLOTS",
    "Receipt",
    "Simulation",
    "Token",
    "Trc20World",
    "chain_parameters_body",
    "estimate_energy_body",
    "transaction_bytes",
    "trigger_constant_body",
]

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"  # mainnet USDT; the sandbox deploys it here
ENERGY_TO_HOLDER = (64_285, 49_635)  # (energy_used, of which penalty): receiver balance > 0
ENERGY_TO_NEW_HOLDER = (130_285, 100_635)  # receiver balance == 0
REVERT_ENERGY = 1_562  # a failed require stops early; only the energy used so far is charged
VIEW_ENERGY = {"decimals()": 253, "balanceOf(address)": 935}
WINDOW_SLOTS = 28_800  # 24 h of 3-s slots (java-tron Parameter.WINDOW_SIZE_MS / BLOCK_INTERVAL)
_PRECISION = 1_000_000
_MAX_RESULT_SIZE_IN_TX = 64
_SIGNATURE_BYTES = 65
_TRIGGER_SMART_CONTRACT = 31
_TRX_PRECISION = 1_000_000  # estimateenergy stops its search within 1 TRX of fee_limit
_REVERT = "REVERT opcode executed"
_SELECTORS = {
    "a9059cbb": "transfer(address,uint256)",
    "70a08231": "balanceOf(address)",
    "313ce567": "decimals()",
}

# Emission order of java-tron's Wallet.getChainParameters; values mainnet's (transfer.md §7).
CHAIN_PARAMETERS: tuple[tuple[str, int], ...] = (
    ("getMaintenanceTimeInterval", 21_600_000),
    ("getAccountUpgradeCost", 9_999_000_000),
    ("getCreateAccountFee", 100_000),
    ("getTransactionFee", 1_000),
    ("getAssetIssueFee", 1_024_000_000),
    ("getWitnessPayPerBlock", 8_000_000),
    ("getWitnessStandbyAllowance", 115_200_000_000),
    ("getCreateNewAccountFeeInSystemContract", 1_000_000),
    ("getCreateNewAccountBandwidthRate", 1),
    ("getAllowCreationOfContracts", 1),
    ("getRemoveThePowerOfTheGr", -1),
    ("getEnergyFee", 100),
    ("getExchangeCreateFee", 1_024_000_000),
    ("getMaxCpuTimeOfOneTx", 80),
    ("getAllowUpdateAccountName", 0),
    ("getAllowSameTokenName", 1),
    ("getAllowDelegateResource", 1),
    ("getTotalEnergyLimit", 180_000_000_000),
    ("getAllowTvmTransferTrc10", 1),
    ("getTotalEnergyCurrentLimit", 180_000_000_000),
    ("getAllowMultiSign", 1),
    ("getAllowAdaptiveEnergy", 0),
    ("getUpdateAccountPermissionFee", 100_000_000),
    ("getMultiSignFee", 1_000_000),
    ("getFreeNetLimit", 600),
    ("getTotalNetLimit", 43_200_000_000),
    ("getMaxFeeLimit", 15_000_000_000),
    ("getMemoFee", 1_000_000),
    ("getAllowDynamicEnergy", 1),
    ("getDynamicEnergyThreshold", 5_000_000_000),
    ("getDynamicEnergyIncreaseFactor", 2_000),
    ("getDynamicEnergyMaxFactor", 34_000),
    ("getMaxDelegateLockPeriod", 864_000),
)


@dataclass(slots=True)
class Token:
    """A TRC20 contract: balances in base units, and the switches that make a transfer revert."""

    address: str
    symbol: str
    decimals: int
    balances: dict[str, int] = field(default_factory=dict)
    paused: bool = False
    blacklisted: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the VM would do with one call against the head state."""

    energy_used: int
    energy_penalty: int = 0
    result: bytes = b""
    reverted: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """An executed transfer: ``result`` is ``SUCCESS`` or ``OUT_OF_ENERGY`` (java-tron's)."""

    result: str
    net_usage: int  # bytes paid from staked or free bandwidth
    net_fee: int  # sun burned for bandwidth
    energy_usage: int  # from the account's energy
    energy_fee: int  # sun burned for energy
    energy_usage_total: int


@dataclass(slots=True)
class _Usage:
    used: int = 0
    slot: int = 0

    def at(self, now: int) -> int:
        """java-tron ``ResourceProcessor.increase(used, 0, slot, now)``: linear recovery."""
        return _increase(self.used, 0, self.slot, now)

    def add(self, amount: int, now: int) -> None:
        self.used = _increase(self.used, amount, self.slot, now)
        self.slot = now


def _increase(last: int, usage: int, last_slot: int, now: int) -> int:
    average_last = -(-last * _PRECISION // WINDOW_SLOTS)
    average_usage = -(-usage * _PRECISION // WINDOW_SLOTS)
    if last_slot != now:
        if last_slot + WINDOW_SLOTS > now:
            decay = (WINDOW_SLOTS - (now - last_slot)) / WINDOW_SLOTS
            average_last = math.floor(average_last * decay + 0.5)  # Java Math.round
        else:
            average_last = 0
    return (average_last + average_usage) * WINDOW_SLOTS // _PRECISION


class Trc20World:
    """The chain's TRC20 tokens and resource usage; ``chain.trc20`` in the sandbox."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self.tokens: dict[str, Token] = {}
        self.parameters: dict[str, int] = dict(CHAIN_PARAMETERS)
        # java-tron's vm.estimateEnergy is off by default (transfer.md §2.3).
        self.estimate_energy_enabled = False
        self._energy: dict[str, _Usage] = {}
        self._net: dict[str, _Usage] = {}
        self._free_net: dict[str, _Usage] = {}
        self.deploy("USDT", 6, address=USDT)

    # -- tokens -----------------------------------------------------------------------------

    def deploy(self, symbol: str, decimals: int, *, address: str | None = None) -> str:
        """A TRC20 contract at ``address`` (a fresh one when omitted)."""
        address = address or self._chain.new_address()
        self.tokens[address] = Token(address, symbol, decimals)
        return address

    def mint(self, token: str, holder: str, amount: int) -> None:
        if amount < 0:
            raise ValueError("amount must not be negative")
        balances = self.tokens[token].balances
        balances[holder] = balances.get(holder, 0) + amount

    def balance_of(self, token: str, holder: str) -> int:
        return self.tokens[token].balances.get(holder, 0)

    # -- resource usage (already recovered to the head slot, as getaccountresource shows) ----

    def energy_used(self, address: str) -> int:
        return self._usage(self._energy, address)

    def net_used(self, address: str) -> int:
        return self._usage(self._net, address)

    def free_net_used(self, address: str) -> int:
        return self._usage(self._free_net, address)

    @property
    def free_net_limit(self) -> int:
        """Every account's daily free bandwidth: the ``getFreeNetLimit`` chain parameter."""
        return self.parameters["getFreeNetLimit"]

    def consume_energy(self, address: str, amount: int) -> None:
        """Spend energy now (what a contract call did); it recovers over 24 h."""
        self._energy.setdefault(address, _Usage()).add(amount, self._chain.head())

    def consume_free_net(self, address: str, amount: int) -> None:
        self._free_net.setdefault(address, _Usage()).add(amount, self._chain.head())

    def _usage(self, table: dict[str, _Usage], address: str) -> int:
        usage = table.get(address)
        return 0 if usage is None else usage.at(self._chain.head())

    # -- the VM -----------------------------------------------------------------------------

    def simulate(self, contract: str, owner: str, data: bytes) -> Simulation | None:
        """A constant call; ``None`` when no contract lives at ``contract``."""
        token = self.tokens.get(contract)
        if token is None:
            return None
        selector = _SELECTORS.get(data[:4].hex())
        args = data[4:]
        if selector == "decimals()" and not args:
            return Simulation(VIEW_ENERGY[selector], result=token.decimals.to_bytes(32, "big"))
        if selector == "balanceOf(address)" and len(args) == 32:
            holder = _address_word(args)
            if holder is not None:
                balance = token.balances.get(holder, 0)
                return Simulation(VIEW_ENERGY[selector], result=balance.to_bytes(32, "big"))
        if selector == "transfer(address,uint256)" and len(args) == 64:
            to = _address_word(args[:32])
            amount = int.from_bytes(args[32:], "big")
            if (
                to is not None
                and not token.paused
                and owner not in token.blacklisted
                and token.balances.get(owner, 0) >= amount
            ):
                holds = token.balances.get(to, 0) > 0 or to == owner
                energy, penalty = ENERGY_TO_HOLDER if holds else ENERGY_TO_NEW_HOLDER
                return Simulation(energy, penalty, result=bytes(32))  # USDT returns a zero word
        return Simulation(REVERT_ENERGY, reverted=True)

    def estimate_energy(self, simulation: Simulation) -> int:
        """java-tron ``Wallet.estimateEnergy``: a binary search over fee_limit to 1 TRX.

        Every fee_limit from ``energy_used * price`` up is enough here (the state does not
        change between runs), so the search only walks down from twice that.
        """
        price = self.parameters["getEnergyFee"]
        low = simulation.energy_used * price
        high = min(2 * low, self.parameters["getMaxFeeLimit"])
        while high - low > _TRX_PRECISION:
            high = (low + high) // 2
        return -(-high // price)

    def transfer(self, token: str, owner: str, to: str, amount: int, *, fee_limit: int) -> Receipt:
        """Execute a transfer as java-tron charges it; ``ValueError`` where it is rejected at
        broadcast (nothing on chain): unknown sender, or bandwidth TRX cannot pay."""
        chain, head = self._chain, self._chain.head()
        account = chain.account(owner)
        if account is None:
            raise ValueError(f"account [{owner}] does not exist")
        if not 0 <= fee_limit <= self.parameters["getMaxFeeLimit"]:
            raise ValueError(f"feeLimit must be >= 0 and <= {self.parameters['getMaxFeeLimit']}")
        data = bytes.fromhex("a9059cbb") + _word(to) + amount.to_bytes(32, "big")
        size = transaction_bytes(self.raw_data(owner, token, data, fee_limit=fee_limit))
        balance = account.balance
        net_usage = net_fee = 0
        if chain.net_limit(owner) - self.net_used(owner) >= size:
            self._net.setdefault(owner, _Usage()).add(size, head)
            net_usage = size
        elif self.free_net_limit - self.free_net_used(owner) >= size:
            self.consume_free_net(owner, size)
            net_usage = size
        else:
            net_fee = size * self.parameters["getTransactionFee"]
            if balance < net_fee:
                raise ValueError("Account resource insufficient error.")
            balance -= net_fee
        simulation = self.simulate(token, owner, data)
        assert simulation is not None, "no contract at that address"
        price = self.parameters["getEnergyFee"]
        available = max(0, chain.energy_limit(owner) - self.energy_used(owner))
        budget = min(available + balance // price, fee_limit // price)
        used = simulation.energy_used
        result = "REVERT" if simulation.reverted else "SUCCESS"
        if used > budget:
            used, result = budget, "OUT_OF_ENERGY"  # spendAllEnergy: the whole budget goes
        from_stake = min(used, available)
        if from_stake:
            self.consume_energy(owner, from_stake)
        energy_fee = (used - from_stake) * price
        chain.burn(owner, net_fee + energy_fee)
        if result == "SUCCESS":
            balances = self.tokens[token].balances
            balances[owner] -= amount
            balances[to] = balances.get(to, 0) + amount
            for holder in (owner, to):  # a zero slot is deleted (java-tron Storage)
                if not balances[holder]:
                    del balances[holder]
        return Receipt(result, net_usage, net_fee, from_stake, energy_fee, used)

    def raw_data(self, owner: str, contract: str, data: bytes, *, fee_limit: int = 0) -> bytes:
        """The protobuf ``Transaction.raw`` of a TriggerSmartContract, as a wallet builds it."""
        chain = self._chain
        head = chain.head()
        block_id = bytes.fromhex(chain.block_id(head))
        timestamp = chain.block_timestamp_ms(head)
        value = _pb_bytes(1, _raw(owner)) + _pb_bytes(2, _raw(contract)) + _pb_bytes(4, data)
        type_url = b"type.googleapis.com/protocol.TriggerSmartContract"
        parameter = _pb_bytes(1, type_url) + _pb_bytes(2, value)
        contract_field = _pb_int(1, _TRIGGER_SMART_CONTRACT) + _pb_bytes(2, parameter)
        return b"".join(
            (
                _pb_bytes(1, block_id[6:8]),
                _pb_bytes(4, block_id[8:16]),
                _pb_int(8, timestamp + 60_000),
                _pb_bytes(11, contract_field),
                _pb_int(14, timestamp),
                _pb_int(18, fee_limit),
            )
        )


def transaction_bytes(raw: bytes) -> int:
    """Bandwidth of a single-signature transaction: BandwidthProcessor's signed size + 64."""
    signed = len(_pb_bytes(1, raw)) + len(_pb_bytes(2, b"\0" * _SIGNATURE_BYTES))
    return signed + _MAX_RESULT_SIZE_IN_TX


# -- the servlets' bodies (trongrid.py routes these) ---------------------------------------------


def chain_parameters_body(
    world: Trc20World, params: dict[str, Any], visible: bool
) -> dict[str, Any]:
    """``/wallet/getchainparameters``: every key, ``value`` left out when 0 (proto3)."""
    return {
        "chainParameter": [
            {"key": key, **({"value": value} if value else {})}
            for key, value in world.parameters.items()
        ]
    }


def trigger_constant_body(
    world: Trc20World, params: dict[str, Any], visible: bool
) -> dict[str, Any]:
    """``/wallet/triggerconstantcontract``: a TransactionExtention, errors in ``result``."""
    ran = _run(world, params, visible)
    if isinstance(ran, dict):
        return ran
    owner, contract, data, simulation = ran
    raw = world.raw_data(owner, contract, data)
    result: dict[str, Any] = {"result": True}
    if simulation.reverted:
        result["message"] = _text(_REVERT, visible)
    body: dict[str, Any] = {"result": result, "energy_used": simulation.energy_used}
    if simulation.energy_penalty:
        body["energy_penalty"] = simulation.energy_penalty
    if not simulation.reverted:
        body["constant_result"] = [simulation.result.hex()]
    contract_value = {
        "data": data.hex(),
        "owner_address": _show(owner, visible),
        "contract_address": _show(contract, visible),
    }
    body["transaction"] = {
        "ret": [{"ret": "FAILED"}] if simulation.reverted else [{}],
        "visible": visible,
        "txID": hashlib.sha256(raw).hexdigest(),
        "raw_data": {
            "contract": [
                {
                    "parameter": {
                        "value": contract_value,
                        "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
                    },
                    "type": "TriggerSmartContract",
                }
            ],
        },
        "raw_data_hex": raw.hex(),
    }
    return body


def estimate_energy_body(
    world: Trc20World, params: dict[str, Any], visible: bool
) -> dict[str, Any]:
    """``/wallet/estimateenergy``: ``EstimateEnergyMessage``, or why it cannot answer."""
    if not world.estimate_energy_enabled:
        return _validate_error("this node does not support estimate energy", visible)
    ran = _run(world, params, visible)
    if isinstance(ran, dict):
        return ran
    simulation = ran[3]
    if simulation.reverted:
        return {"result": {"code": "CONTRACT_EXE_ERROR", "message": _text(_REVERT, visible)}}
    return {"result": {"result": True}, "energy_required": world.estimate_energy(simulation)}


def _run(
    world: Trc20World, params: dict[str, Any], visible: bool
) -> tuple[str, str, bytes, Simulation] | dict[str, Any]:
    """(owner, contract, data, simulation), or the body java-tron answers when it cannot run."""
    try:
        owner, contract, data = _call(params, visible)
    except ValueError as error:
        return {"result": {"code": "OTHER_ERROR", "message": _text(str(error), visible)}}
    simulation = world.simulate(contract, owner, data)
    if simulation is None:
        return _validate_error("Smart contract is not exist.", visible)
    return owner, contract, data, simulation


def _call(params: dict[str, Any], visible: bool) -> tuple[str, str, bytes]:
    """(owner, contract, call data) from a TriggerSmartContract request; ValueError if bad."""
    owner = _parse_address(params.get("owner_address"), visible, "owner_address")
    contract = _parse_address(params.get("contract_address"), visible, "contract_address")
    selector = params.get("function_selector")
    try:
        if selector:
            digest = _selector_of(str(selector))
            data = digest + bytes.fromhex(str(params.get("parameter") or ""))
        else:
            data = bytes.fromhex(str(params.get("data") or ""))
    except ValueError:
        raise ValueError("org.bouncycastle.util.encoders.DecoderException : invalid hex") from None
    return owner, contract, data


def _selector_of(signature: str) -> bytes:
    """keccak256(signature)[:4] for the selectors this VM knows; anything else matches none."""
    for selector, known in _SELECTORS.items():
        if known == signature:
            return bytes.fromhex(selector)
    return hashlib.sha256(signature.encode()).digest()[:4]  # reverts: no such function


def _parse_address(value: Any, visible: bool, name: str) -> str:
    text = "" if value is None else str(value)
    if visible:
        raw = decode_address(text) if text else None
    else:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 21 or raw[0] != 0x41:
        raise ValueError(f"java.lang.IllegalArgumentException : Invalid {name}")
    return encode_address(raw)


def _address_word(word: bytes) -> str | None:
    """The address in an ABI word; ``None`` when its upper 12 bytes are not zero."""
    if any(word[:12]):
        return None
    return encode_address(b"\x41" + word[12:])


def _word(address: str) -> bytes:
    return b"\0" * 12 + _raw(address)[1:]


def _raw(address: str) -> bytes:
    raw = decode_address(address)
    if raw is None:
        raise ValueError(f"Invalid address {address!r}")
    return raw


def _validate_error(message: str, visible: bool) -> dict[str, Any]:
    return {"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": _text(message, visible)}}


def _text(message: str, visible: bool) -> str:
    """``Return.message`` is bytes: text when visible, hex otherwise (HttpSelfFormatFieldName)."""
    return message if visible else message.encode().hex()


def _show(address: str, visible: bool) -> str:
    return address if visible else _raw(address).hex()

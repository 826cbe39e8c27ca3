"""An in-memory TRON chain with just enough java-tron to delegate energy and prove it.

Blocks are produced lazily from the clock, with no background task: every public method first
applies the transactions due up to the head block, in block order. A run is therefore
deterministic for a given seed and call sequence, and ``head()`` costs O(due transactions).

Every address the chain makes is a real secp256k1 key's address (derived from the seed), and
every transaction carries a recoverable signature over its txid by the owner's key, so a client
can check who signed a delegation exactly as it would on mainnet.

Rules follow java-tron: EnergyLimit from EnergyProcessor (stake 2.0), delegation from
DelegateResourceActuator / UnDelegateResourceActuator (balances move from owner to receiver,
TotalEnergyWeight does not change), up to two delegation records per pair (unlocked and
locked), a transaction id that is the SHA-256 of its protobuf ``raw_data``, and finality at
``head - 18``.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal

from energy_async.sandbox.base58 import decode_address, is_valid_address
from energy_async.sandbox.keys import SigningKey

__all__ = [
    "BLOCK_TIME",
    "DEFAULT_LOCK_PERIOD",
    "SOLID_DEPTH",
    "SUN_PER_TRX",
    "TOTAL_ENERGY_LIMIT",
    "TOTAL_NET_LIMIT",
    "TOTAL_NET_WEIGHT",
    "TX_EXPIRATION_MS",
    "WITNESS_COUNT",
    "Account",
    "Chain",
    "ChainClock",
    "DelegationRecord",
    "ResourceStake",
    "Transaction",
    "TxState",
    "resource_limit",
]

BLOCK_TIME = 3.0
SOLID_DEPTH = 18
TOTAL_ENERGY_LIMIT = 180_000_000_000
# Bandwidth is not what the sandbox is about; mainnet-scale constants keep the output realistic.
TOTAL_NET_LIMIT = 43_200_000_000
TOTAL_NET_WEIGHT = 26_514_583_140
SUN_PER_TRX = 1_000_000
DEFAULT_LOCK_PERIOD = 86_400  # blocks: DELEGATE_PERIOD / BLOCK_PRODUCED_INTERVAL
WITNESS_COUNT = 27  # super representatives producing blocks in turn
TX_EXPIRATION_MS = 60_000  # a broadcast that is not in a block by then is dropped
_BLOCK_MS = 3_000
_MAX_RESULT_SIZE_IN_TX = 64

DELEGATE = "DelegateResourceContract"
UNDELEGATE = "UnDelegateResourceContract"
_CONTRACT_TYPE_CODES = {DELEGATE: 57, UNDELEGATE: 58}
_RESOURCE_CODES = {"BANDWIDTH": 0, "ENERGY": 1}

TxState = Literal["unknown", "pending", "included", "solid"]


class ChainClock:
    """Chain time: real time scaled by ``speed``, plus whatever tests jump forward.

    ``speed=0`` freezes the clock, so only ``advance`` moves it: exact, race-free tests.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        self.speed = speed
        self._wall = time.time()
        self._mono = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return self._wall + (time.monotonic() - self._mono) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the chain clock never runs backwards")
        self._offset += seconds


@dataclass(slots=True)
class ResourceStake:
    """One resource of an account, in sun (java-tron's frozenV2 / delegated / acquired)."""

    frozen: int = 0  # own stake still held
    delegated: int = 0  # delegated_frozenV2_balance_for_*
    acquired: int = 0  # acquired_delegated_frozenV2_balance_for_*


@dataclass(slots=True)
class Account:
    address: str
    create_time_ms: int
    balance: int = 0
    energy: ResourceStake = field(default_factory=ResourceStake)
    bandwidth: ResourceStake = field(default_factory=ResourceStake)

    def stake(self, resource: str) -> ResourceStake:
        return self.energy if resource == "ENERGY" else self.bandwidth

    def copy(self) -> Account:
        return replace(self, energy=replace(self.energy), bandwidth=replace(self.bandwidth))


@dataclass(slots=True)
class DelegationRecord:
    """One DelegatedResourceV2 entry: a pair has an unlocked and possibly a locked one."""

    owner: str
    receiver: str
    locked: bool
    energy: int = 0
    bandwidth: int = 0
    expire_energy_ms: int = 0
    expire_bandwidth_ms: int = 0

    def amount(self, resource: str) -> int:
        return self.energy if resource == "ENERGY" else self.bandwidth

    def add(self, resource: str, sun: int) -> None:
        if resource == "ENERGY":
            self.energy += sun
        else:
            self.bandwidth += sun

    def expire_ms(self, resource: str) -> int:
        return self.expire_energy_ms if resource == "ENERGY" else self.expire_bandwidth_ms

    def set_expire_ms(self, resource: str, value: int) -> None:
        if resource == "ENERGY":
            self.expire_energy_ms = value
        else:
            self.expire_bandwidth_ms = value

    @property
    def empty(self) -> bool:
        return not self.energy and not self.bandwidth


@dataclass(frozen=True)  # no slots: ``signature`` is cached in the instance dict
class Transaction:
    """A broadcast resource contract, as the node stores it."""

    txid: str
    contract_type: str  # "DelegateResourceContract" | "UnDelegateResourceContract"
    owner: str
    receiver: str
    resource: str
    balance: int
    lock: bool
    lock_period: int  # as sent; 0 with lock means DEFAULT_LOCK_PERIOD
    timestamp_ms: int
    expiration_ms: int
    ref_block_bytes: bytes
    ref_block_hash: bytes
    signer: SigningKey = field(repr=False, compare=False)  # the owner's key

    def raw_data(self) -> bytes:
        """The protobuf ``Transaction.raw`` bytes; the txid is their SHA-256."""
        value = b"".join(
            (
                _pb_bytes(1, _raw_address(self.owner)),
                _pb_int(2, _RESOURCE_CODES[self.resource]),
                _pb_int(3, self.balance),
                _pb_bytes(4, _raw_address(self.receiver)),
                _pb_int(5, int(self.lock)) if self.contract_type == DELEGATE else b"",
                _pb_int(6, self.lock_period) if self.contract_type == DELEGATE else b"",
            )
        )
        parameter = _pb_bytes(1, self.type_url.encode()) + _pb_bytes(2, value)
        contract = _pb_int(1, _CONTRACT_TYPE_CODES[self.contract_type]) + _pb_bytes(2, parameter)
        return b"".join(
            (
                _pb_bytes(1, self.ref_block_bytes),
                _pb_bytes(4, self.ref_block_hash),
                _pb_int(8, self.expiration_ms),
                _pb_bytes(11, contract),
                _pb_int(14, self.timestamp_ms),
            )
        )

    @property
    def type_url(self) -> str:
        return f"type.googleapis.com/protocol.{self.contract_type}"

    @functools.cached_property
    def signature(self) -> bytes:
        """r || s || v by the owner's key over the txid, v as 27/28 (0x1b/0x1c) like the wallets
        in java-tron's docs. Made on first read: signing dominated a broadcast's cost."""
        made = self.signer.sign(bytes.fromhex(self.txid))
        return made[:64] + bytes([made[64] + 27])

    @property
    def net_usage(self) -> int:
        """Bandwidth as BandwidthProcessor counts it: signed size plus the 64-byte result."""
        signed = _pb_bytes(1, self.raw_data()) + _pb_bytes(2, self.signature)
        return len(signed) + _MAX_RESULT_SIZE_IN_TX


@dataclass(slots=True)
class _Entry:
    tx: Transaction
    lands: bool
    block: int | None = None


def resource_limit(stake: ResourceStake, total_limit: int, total_weight: int) -> int:
    """EnergyProcessor.calculateGlobalEnergyLimit (stake 2.0), in the node's double arithmetic."""
    froze = stake.frozen + stake.acquired
    return int(froze / SUN_PER_TRX * (total_limit / total_weight))


class Chain:
    """The shared ledger behind the sandbox providers and the sandbox TronGrid."""

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        total_energy_weight: int = 18_971_780_957,
        drift_per_block: float = 0.0,
        start_block: int = 1_000,
    ) -> None:
        if total_energy_weight <= 0:
            raise ValueError("total_energy_weight must be positive")
        if start_block < 0:
            raise ValueError("start_block must not be negative")
        self.seed = seed
        self.clock = ChainClock(speed)
        # Slot times are whole seconds, as on mainnet (genesis 1529891469000, 3 s slots).
        now_ms = int(self.clock.now() * 1000)
        self._genesis_ms = now_ms - now_ms % 1000 - start_block * _BLOCK_MS
        self._addresses = random.Random(f"addresses:{seed}")
        self._drift = drift_per_block
        self._drift_rng = random.Random(f"drift:{seed}")
        self._weight = float(total_energy_weight)
        self._weight_block = start_block
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, SigningKey] = {}
        self._witness_keys: dict[int, SigningKey] = {}
        self._blocks: dict[int, list[str]] = {}  # block number -> txids, in execution order
        self._txs: dict[str, _Entry] = {}
        self._due: list[tuple[int, int, str]] = []  # (block, sequence, txid), a heap
        self._sequence = 0
        self._records: dict[tuple[str, str, bool], DelegationRecord] = {}
        self._to_accounts: dict[str, dict[str, None]] = {}
        self._from_accounts: dict[str, dict[str, None]] = {}
        # What a broadcast still in flight has claimed, so a second one cannot overspend.
        self._pending_out: dict[tuple[str, str], int] = {}
        self._pending_reclaim: dict[tuple[str, str, str], int] = {}
        # Included but not yet solid, per address: how /walletsolidity/ rewinds head state.
        self._unsolid: deque[_Entry] = deque()
        self._unsolid_by_address: dict[str, deque[_Entry]] = {}
        # TRC20 tokens and resource usage live in trc20.py, which builds on this module.
        from energy_async.sandbox.trc20 import Trc20World

        self.trc20 = Trc20World(self)

    # -- blocks -------------------------------------------------------------------------------

    def head(self) -> int:
        return self._sync()

    def solid_head(self) -> int:
        return max(0, self._sync() - SOLID_DEPTH)

    def advance_blocks(self, n: int) -> None:
        self.clock.advance(n * BLOCK_TIME)
        self._sync()

    def block_timestamp_ms(self, number: int) -> int:
        return self._genesis_ms + number * _BLOCK_MS

    def block_id(self, number: int) -> str:
        """java-tron's BlockId: the number in the first 8 bytes, then hash bytes."""
        return (number.to_bytes(8, "big") + self.block_hash(number)[8:]).hex()

    def block_hash(self, number: int) -> bytes:
        """The 32-byte hash a block's id is cut from (its last 24 bytes), and its witness signs.

        The sandbox builds no header bytes: the hash is derived from the seed and the number.
        """
        return hashlib.sha256(f"block:{self.seed}:{number}".encode()).digest()

    def block_txids(self, number: int) -> list[str]:
        """The transactions block ``number`` holds, in execution order (none for a future one)."""
        self._sync()
        return list(self._blocks.get(number, ()))

    def witness_key(self, number: int) -> SigningKey:
        """The key of the witness that produced block ``number``: 27 of them take turns."""
        slot = number % WITNESS_COUNT
        key = self._witness_keys.get(slot)
        if key is None:
            key = SigningKey(hashlib.sha256(f"witness:{self.seed}:{slot}".encode()).digest())
            self._witness_keys[slot] = key
        return key

    def _head_at(self, now: float) -> int:
        return (int(now * 1000) - self._genesis_ms) // _BLOCK_MS

    def _sync(self) -> int:
        head = self._head_at(self.clock.now())
        while self._due and self._due[0][0] <= head:
            block, _, txid = heapq.heappop(self._due)
            self._execute(self._txs[txid], block)
        solid = head - SOLID_DEPTH
        while self._unsolid and (self._unsolid[0].block or 0) <= solid:
            entry = self._unsolid.popleft()
            for address in (entry.tx.owner, entry.tx.receiver):
                queue = self._unsolid_by_address[address]
                queue.popleft()
                if not queue:
                    del self._unsolid_by_address[address]
        return head

    # -- network totals -----------------------------------------------------------------------

    @property
    def total_energy_limit(self) -> int:
        return TOTAL_ENERGY_LIMIT

    @property
    def total_energy_weight(self) -> int:
        """Whole TRX staked for energy network-wide, after this block's drift."""
        return max(1, round(self._current_weight()))

    def set_total_energy_weight(self, value: int) -> None:
        if value <= 0:
            raise ValueError("total_energy_weight must be positive")
        self._current_weight()
        self._weight = float(value)

    def _current_weight(self) -> float:
        # The walk takes one seeded step per block in block order, so it is the same however
        # often it is read; it runs only when read, keeping head() free of per-block work.
        if self._drift:
            head = self._head_at(self.clock.now())
            while self._weight_block < head:
                self._weight_block += 1
                self._weight *= 1 + self._drift * self._drift_rng.uniform(-1.0, 1.0)
        return self._weight

    # -- accounts -----------------------------------------------------------------------------

    @staticmethod
    def is_valid_address(address: str) -> bool:
        return is_valid_address(address)

    def new_address(self) -> str:
        """A fresh address, deterministic by seed, not activated; the chain holds its key."""
        while True:
            try:
                key = SigningKey(self._addresses.randbytes(32))
            except ValueError:  # zero or past the curve order, about 2**-128 likely
                continue
            address = key.address
            self._keys[address] = key
            return address

    def private_key(self, address: str) -> SigningKey | None:
        """The key behind an address this chain made (the sandbox's own, worthless keys)."""
        return self._keys.get(address)

    def new_account(
        self, *, balance_sun: int = 0, energy_stake_sun: int = 0, bandwidth_stake_sun: int = 0
    ) -> str:
        """An activated account; its own stake counts in TotalEnergyWeight like a freeze."""
        if min(balance_sun, energy_stake_sun, bandwidth_stake_sun) < 0:
            raise ValueError("balances must not be negative")
        address = self.new_address()
        self.activate(address)
        account = self._accounts[address]
        account.balance = balance_sun
        account.energy.frozen = energy_stake_sun
        account.bandwidth.frozen = bandwidth_stake_sun
        if energy_stake_sun:
            self._weight = self._current_weight() + energy_stake_sun // SUN_PER_TRX
        return address

    def activate(self, address: str) -> None:
        """Create the account (what any first transfer does); a no-op if it exists."""
        self._sync()
        if not is_valid_address(address):
            raise ValueError(f"Invalid address {address!r}")
        if address not in self._accounts:
            self._accounts[address] = Account(address, int(self.clock.now() * 1000))

    def is_activated(self, address: str) -> bool:
        self._sync()
        return address in self._accounts

    def account(self, address: str, *, solid: bool = False) -> Account | None:
        """A copy of the account as the head (or the latest solid block) sees it."""
        self._sync()
        current = self._accounts.get(address)
        if current is None:
            return None
        view = current.copy()
        if solid:
            for entry in self._unsolid_by_address.get(address, ()):
                self._move_stake(entry.tx, view, undo=True)
        return view

    def energy_limit(self, address: str, *, solid: bool = False) -> int:
        """EnergyLimit as getaccountresource shows it now."""
        account = self.account(address, solid=solid)
        if account is None:
            return 0
        return resource_limit(account.energy, TOTAL_ENERGY_LIMIT, self.total_energy_weight)

    def burn(self, address: str, sun: int) -> None:
        """Take fees from an account's balance (java-tron burns them)."""
        self._sync()
        self._accounts[address].balance -= sun

    def net_limit(self, address: str, *, solid: bool = False) -> int:
        account = self.account(address, solid=solid)
        if account is None:
            return 0
        return resource_limit(account.bandwidth, TOTAL_NET_LIMIT, TOTAL_NET_WEIGHT)

    # -- delegation ---------------------------------------------------------------------------

    def delegate(
        self,
        owner: str,
        receiver: str,
        balance_sun: int,
        *,
        resource: str = "ENERGY",
        lock: bool = False,
        lock_period: int = 0,
        lands: bool = True,
    ) -> str:
        """Broadcast a DelegateResourceContract; it goes into the next block if it ``lands``.

        Raises ValueError where DelegateResourceActuator would reject the transaction.
        """
        head = self._sync()
        self._check_parties(owner, receiver, resource)
        if balance_sun < SUN_PER_TRX:
            raise ValueError("delegateBalance must be greater than or equal to 1 TRX")
        available = self._accounts[owner].stake(resource).frozen
        available -= self._pending_out.get((owner, resource), 0)
        if balance_sun > available:
            raise ValueError(
                f"delegateBalance must be less than or equal to available FreezeV2 {resource} "
                f"balance, request={balance_sun}, available={available}"
            )
        if lock_period < 0:
            raise ValueError("lock_period must not be negative")
        if lock:
            locked = self._records.get((owner, receiver, True))
            remaining = 0 if locked is None else locked.expire_ms(resource)
            remaining -= self.block_timestamp_ms(head)
            if (lock_period or DEFAULT_LOCK_PERIOD) * _BLOCK_MS < remaining:
                raise ValueError(
                    f"the lock period for {resource} cannot be less than the remaining time "
                    f"({remaining // 1000}s) of the last lock"
                )
        txid = self._broadcast(
            DELEGATE,
            owner,
            receiver,
            resource,
            balance_sun,
            lock,
            lock_period if lock else 0,
            lands,
        )
        if lands:
            key = (owner, resource)
            self._pending_out[key] = self._pending_out.get(key, 0) + balance_sun
        return txid

    def undelegate(
        self, owner: str, receiver: str, balance_sun: int, *, resource: str = "ENERGY"
    ) -> str:
        """Broadcast an UnDelegateResourceContract (a reclaim), included in the next block."""
        head = self._sync()
        self._check_parties(owner, receiver, resource)
        if balance_sun <= 0:
            raise ValueError("unDelegateBalance must be more than 0 TRX")
        now_ms = self.block_timestamp_ms(head)
        available = sum(
            record.amount(resource)
            for record in self._pair_records(owner, receiver)
            if not record.locked or record.expire_ms(resource) < now_ms
        )
        available -= self._pending_reclaim.get((owner, receiver, resource), 0)
        if available < balance_sun:
            raise ValueError(
                f"insufficient delegatedFrozenBalance({resource}), request={balance_sun}, "
                f"unlock_balance={available}"
            )
        txid = self._broadcast(UNDELEGATE, owner, receiver, resource, balance_sun, False, 0, True)
        key = (owner, receiver, resource)
        self._pending_reclaim[key] = self._pending_reclaim.get(key, 0) + balance_sun
        return txid

    def delegated_sun(self, owner: str, receiver: str, resource: str = "ENERGY") -> int:
        """What getdelegatedresourcev2 sums to: unlocked plus locked records."""
        return sum(record.amount(resource) for record in self.delegation_records(owner, receiver))

    def delegation_records(
        self, owner: str, receiver: str, *, solid: bool = False
    ) -> list[DelegationRecord]:
        """Copies of the pair's records, unlocked first, empty ones left out."""
        self._sync()
        records = {record.locked: replace(record) for record in self._pair_records(owner, receiver)}
        if solid:
            for entry in self._unsolid_by_address.get(owner, ()):
                tx = entry.tx
                if tx.receiver != receiver:
                    continue
                locked = tx.lock and tx.contract_type == DELEGATE
                record = records.setdefault(locked, DelegationRecord(owner, receiver, locked))
                record.add(tx.resource, -tx.balance if tx.contract_type == DELEGATE else tx.balance)
            # A lock shorter than 18 blocks may have merged since; never show negative stake.
            for record in records.values():
                record.energy, record.bandwidth = max(0, record.energy), max(0, record.bandwidth)
        found = (records.get(locked) for locked in (False, True))
        return [record for record in found if record is not None and not record.empty]

    def delegation_index(self, address: str) -> tuple[list[str], list[str]]:
        """(fromAccounts, toAccounts): who delegates to ``address``, and to whom it delegates."""
        self._sync()
        return list(self._from_accounts.get(address, ())), list(self._to_accounts.get(address, ()))

    # -- transactions -------------------------------------------------------------------------

    def tx_state(self, txid: str) -> TxState:
        head = self._sync()
        entry = self._txs.get(txid)
        if entry is None:
            return "unknown"
        if entry.block is None:
            expired = self.clock.now() * 1000 >= entry.tx.expiration_ms
            return "unknown" if expired and not entry.lands else "pending"
        return "solid" if entry.block <= head - SOLID_DEPTH else "included"

    def tx_block(self, txid: str) -> int | None:
        self._sync()
        entry = self._txs.get(txid)
        return None if entry is None else entry.block

    def transaction(self, txid: str) -> Transaction | None:
        """Any transaction the network knows: in a block, or pending and not yet expired.

        This is the world's view; a node's gettransactionbyid shows only the ones in a block
        (``tx_block`` is not None), and gettransactionfrompending only the pending ones.
        """
        if self.tx_state(txid) == "unknown":
            return None
        return self._txs[txid].tx

    def pending_txids(self) -> list[str]:
        """The pending pool, in broadcast order: broadcast, not in a block, not expired."""
        self._sync()
        now_ms = self.clock.now() * 1000
        return [
            txid
            for txid, entry in self._txs.items()
            if entry.block is None and (entry.lands or now_ms < entry.tx.expiration_ms)
        ]

    def _broadcast(
        self,
        contract_type: str,
        owner: str,
        receiver: str,
        resource: str,
        balance: int,
        lock: bool,
        lock_period: int,
        lands: bool,
    ) -> str:
        key = self._keys[owner]  # _check_parties made sure there is one
        head = self._head_at(self.clock.now())
        ref_block_id = bytes.fromhex(self.block_id(head))
        timestamp = int(self.clock.now() * 1000)
        while True:
            tx = Transaction(
                "",
                contract_type,
                owner,
                receiver,
                resource,
                balance,
                lock,
                lock_period,
                timestamp,
                timestamp + TX_EXPIRATION_MS,
                ref_block_id[6:8],
                ref_block_id[8:16],
                key,
            )
            txid = hashlib.sha256(tx.raw_data()).hexdigest()
            if txid not in self._txs:  # identical twins differ by timestamp, like real wallets
                break
            timestamp += 1
        entry = _Entry(replace(tx, txid=txid), lands)
        self._txs[txid] = entry
        if lands:
            self._sequence += 1
            heapq.heappush(self._due, (head + 1, self._sequence, txid))
        return txid

    def _execute(self, entry: _Entry, block: int) -> None:
        tx = entry.tx
        entry.block = block
        self._blocks.setdefault(block, []).append(tx.txid)
        now_ms = self.block_timestamp_ms(block - 1)  # the latest header while block executes
        self._unlock_expired(tx.owner, tx.receiver, now_ms)
        self._move_stake(tx, self._accounts[tx.owner], undo=False)
        self._move_stake(tx, self._accounts[tx.receiver], undo=False)
        if tx.contract_type == DELEGATE:
            key = (tx.owner, tx.resource)
            self._pending_out[key] -= tx.balance
            record = self._records.setdefault(
                (tx.owner, tx.receiver, tx.lock), DelegationRecord(tx.owner, tx.receiver, tx.lock)
            )
            record.add(tx.resource, tx.balance)
            if tx.lock:
                period = tx.lock_period or DEFAULT_LOCK_PERIOD
                record.set_expire_ms(tx.resource, now_ms + period * _BLOCK_MS)
        else:
            self._pending_reclaim[(tx.owner, tx.receiver, tx.resource)] -= tx.balance
            record = self._records[(tx.owner, tx.receiver, False)]
            record.add(tx.resource, -tx.balance)
            if record.empty:
                del self._records[(tx.owner, tx.receiver, False)]
        self._reindex(tx.owner, tx.receiver)
        self._unsolid.append(entry)
        for address in (tx.owner, tx.receiver):
            self._unsolid_by_address.setdefault(address, deque()).append(entry)

    def _unlock_expired(self, owner: str, receiver: str, now_ms: int) -> None:
        """DelegatedResourceStore.unLockExpireResource: an expired lock merges into unlocked."""
        locked = self._records.get((owner, receiver, True))
        if locked is None:
            return
        unlocked = self._records.setdefault(
            (owner, receiver, False), DelegationRecord(owner, receiver, False)
        )
        for resource in _RESOURCE_CODES:
            if locked.amount(resource) and locked.expire_ms(resource) < now_ms:
                unlocked.add(resource, locked.amount(resource))
                locked.add(resource, -locked.amount(resource))
                locked.set_expire_ms(resource, 0)
        for record in (locked, unlocked):
            if record.empty:
                del self._records[(owner, receiver, record.locked)]

    def _reindex(self, owner: str, receiver: str) -> None:
        if self._pair_records(owner, receiver):
            self._to_accounts.setdefault(owner, {})[receiver] = None
            self._from_accounts.setdefault(receiver, {})[owner] = None
            return
        for index, key, value in (
            (self._to_accounts, owner, receiver),
            (self._from_accounts, receiver, owner),
        ):
            index.get(key, {}).pop(value, None)
            if not index.get(key, True):
                del index[key]

    def _pair_records(self, owner: str, receiver: str) -> list[DelegationRecord]:
        found = (self._records.get((owner, receiver, locked)) for locked in (False, True))
        return [record for record in found if record is not None]

    def _check_parties(self, owner: str, receiver: str, resource: str) -> None:
        if resource not in _RESOURCE_CODES:
            raise ValueError("ResourceCode error, valid ResourceCode[BANDWIDTH, ENERGY]")
        for role, address in (("ownerAddress", owner), ("receiverAddress", receiver)):
            if address not in self._accounts and not is_valid_address(address):
                raise ValueError(f"Invalid {role}")
        if owner == receiver:
            raise ValueError("receiverAddress must not be the same as ownerAddress")
        for address in (owner, receiver):
            if address not in self._accounts:
                raise ValueError(f"Account[{address}] not exists")
        if owner not in self._keys:  # java-tron checks the signature before the contract
            raise ValueError(f"Validate signature error: the sandbox holds no key for {owner}")

    @staticmethod
    def _move_stake(tx: Transaction, account: Account, *, undo: bool) -> None:
        """Apply (or take back) a delegation's balance moves on one side of it."""
        amount = tx.balance if tx.contract_type == DELEGATE else -tx.balance
        if undo:
            amount = -amount
        stake = account.stake(tx.resource)
        if account.address == tx.owner:
            stake.frozen -= amount
            stake.delegated += amount
        else:
            stake.acquired += amount


@functools.lru_cache(maxsize=65_536)  # base58 decoding dominates a broadcast otherwise
def _raw_address(address: str) -> bytes:
    raw = decode_address(address)
    if raw is None:
        raise ValueError(f"Invalid address {address!r}")
    return raw


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb_int(number: int, value: int) -> bytes:
    """A varint field; proto3 leaves zero out."""
    return _varint(number << 3) + _varint(value) if value else b""


def _pb_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value if value else b""

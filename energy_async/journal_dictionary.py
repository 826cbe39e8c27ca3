"""The preset dictionary of the journal's entry encoding 1 (zlib ``zdict``): frozen forever.

A journal entry is small (about 4 KB of JSON) and most of it is key names and common values
that plain zlib cannot learn from one entry alone; a preset dictionary of those (a typical
settled result with its values blanked, and the notes the coordinator writes most) halves the
compressed size. The bytes below must never change: entries written with them are read with
them. A better dictionary is a new encoding with its own prefix, beside this one.
"""

from __future__ import annotations

__all__ = ["ENTRY_DICTIONARY_1"]

ENTRY_DICTIONARY_1 = (
    b'["no answer from catfee or the chain before the deadline; resolve it later by client_ord'
    b'er_id ","settled at the deadline","a create may have been taken and none settled: the or'
    b'der may have been charged; resolve it by client_order_id ","reconciled by replaying the '
    b'create with the same client_order_id","term: revocable at any time (an unlocked delegati'
    b'on); the provider says the rental ends "]{"verdict":"DELIVERED","provider":"catfee","cli'
    b'ent_order_id":"","order":{"provider":"catfee","id":"","client_order_id":"","target":"","'
    b'energy":0,"transfers":null,"duration":"1h","status":"DELEGATE_SUCCESS","confirm_status":'
    b'"DELEGATION_CONFIRMED","activate_status":"ALREADY_ACTIVATED","delegate_hash":"","delegat'
    b'e_hashes":[""],"cost_sun":0,"activation_cost_sun":0,"created_at_ms":0,"expires_at_ms":0,'
    b'"balance_after_sun":0,"raw":{"id":"","client_order_id":"","resource_type":"ENERGY","bill'
    b'ing_type":"API","source_type":"API","pay_timestamp":0,"receiver":"","delegate_hash":"","'
    b'delegate_timestamp":0,"pay_amount_sun":0,"activate_amount_sun":0,"quantity":0,"staked_su'
    b'n":0,"duration":0,"expired_timestamp":0,"status":"DELEGATE_SUCCESS","activate_status":"A'
    b'LREADY_ACTIVATED","confirm_status":"DELEGATION_CONFIRMED","balance":0},"reported_phase":'
    b'"CONFIRMED"},"evidence":{"energy_before":0,"energy_after":0,"energy_delta":0,"expected_e'
    b'nergy":0,"attributed_energy":0,"tolerance":0,"total_energy_limit":0,"total_energy_weight'
    b'":0,"delegation":{"txid":"","found":true,"contract_type":"DelegateResourceContract","own'
    b'er":"","receiver":"","resource":"ENERGY","balance_sun":0,"lock":false,"lock_period":0,"c'
    b'ontract_ret":"SUCCESS","in_block":true,"block_number":0,"block_time_ms":0,"solid":false,'
    b'"failed":false,"fail_message":null,"authentic":true,"authenticity":null},"delegated_reso'
    b'urce":{"from_address":"","to_address":"","energy_sun":0,"bandwidth_sun":0,"records":0,"e'
    b'nergy_expires_at_ms":null},"basis":"","delegations":[{"txid":"","counted":true,"energy":'
    b'0,"sun":0,"basis":"","reasons":[],"consistent_reads":0,"tx":{"txid":"","found":true,"con'
    b'tract_type":"DelegateResourceContract","owner":"","receiver":"","resource":"ENERGY","bal'
    b'ance_sun":0,"lock":false,"lock_period":0,"contract_ret":"SUCCESS","in_block":true,"block'
    b'_number":0,"block_time_ms":0,"solid":false,"failed":false,"fail_message":null,"authentic'
    b'":true,"authenticity":null},"term":{"locked":false,"lock_period_blocks":0,"locked_until_'
    b'ms":null,"record_expires_at_ms":null,"provider_expires_at_ms":0,"summary":""}}],"term":{'
    b'"locked":false,"lock_period_blocks":0,"locked_until_ms":null,"record_expires_at_ms":null'
    b',"provider_expires_at_ms":0,"summary":""},"head_before":{"number":0,"timestamp_ms":0,"ta'
    b'ken_at":0},"status_history":[{"at":0,"status":"PAYMENT_SUCCESS","confirm_status":"UNCONF'
    b'IRMED","delegate_hash":null},{"at":0,"status":"DELEGATE_SUCCESS","confirm_status":"DELEG'
    b'ATION_CONFIRMED","delegate_hash":""}],"provider_calls":0,"trongrid_calls":0,"notes":[""]'
    b',"route":[],"started_at":0,"ordered_at":0,"included_at":0,"settled_at":0},"error":null,"'
    b'error_kind":null}'
)

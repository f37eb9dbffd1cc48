"""Translated text for every reason code and error code of the core (en, zh_CN).

The core speaks in codes; this catalogue turns a code and its parameters into a sentence for the
CLI, the receipt, the screen and the voice. A test checks that every `Reason` and every error
code raised in terminal/ has an entry in every language. The Qt UI uses the same catalogue for
these codes (its own widgets are translated with Qt's tools).
"""

from __future__ import annotations

import os
from string import Formatter
from typing import Any

LANGUAGES = ("en", "zh_CN")

EN: dict[str, str] = {
    # Reasons
    "approve": "Approved.",
    "decline": "Declined.",
    "needs_pin": "PIN needed.",
    "needs_supervisor": "A supervisor must approve this.",
    "needs_online": "This needs the server, which cannot be reached.",
    "unknown_card": "This card is not known here.",
    "not_activated": "This card has not been activated yet.",
    "already_active": "This card is already active.",
    "frozen": "This card is frozen. Please contact the issuer.",
    "lost": "This card was reported lost. Keep the card and call a supervisor.",
    "expired": "This card has expired.",
    "closed": "This card is closed.",
    "denylisted": "This card is blocked. Keep the card and call a supervisor.",
    "expiring_soon": "This card expires in {days_left} days.",
    "insufficient_balance": "Not enough balance: {available} available.",
    "partial_approval": "Only {approved_amount} of {requested_amount} could be taken.",
    "unknown_purse": "This card has no purse named {purse}.",
    "currency_mismatch": "This terminal does not accept {currency}.",
    "nothing_to_redeem": "There is no balance on this card.",
    "balance_limit": "The balance would exceed the limit of {limit}.",
    "topup_limit": "A top-up may not exceed {limit}.",
    "pin_required": "Please enter the PIN.",
    "wrong_pin": "Wrong PIN. {tries_left} tries left.",
    "pin_locked": "Too many wrong PINs: locked. Please contact the issuer.",
    "supervisor_required": "A supervisor PIN is needed.",
    "offline_limit_transaction": "Offline, one payment may not exceed {limit}.",
    "offline_limit_card_day": "Offline daily limit for this card reached ({remaining} left).",
    "offline_limit_terminal": "This terminal's offline limit is reached ({remaining} left).",
    "offline_too_long": "Offline for more than {hours} hours: connect to the server first.",
    "malformed_code": "This code cannot be read.",
    "bad_signature": "This code is not genuine.",
    "unknown_key": "This code was signed by an unknown issuer key.",
    "expired_code": "This code has expired. Please show a fresh code.",
    "code_not_yet_valid": "This code is not valid yet. Check the clock of the phone.",
    "replayed_code": "This code has already been used. Please show a fresh code.",
    "void_not_found": "No entry {entry} on this terminal.",
    "void_not_allowed": "This entry cannot be voided ({kind}).",
    "void_too_late": "Only redemptions of the last {minutes} minutes can be voided.",
    "already_voided": "This redemption has already been voided.",
    # Errors
    "error": "Something went wrong.",
    "bad_input": "Bad input: {detail}",
    "amount_not_positive": "The amount must be greater than zero.",
    "bad_amount": "'{amount}' is not an amount (write it like 12.50).",
    "amount_too_large": "'{amount}' {currency} is larger than any card can hold.",
    "too_many_decimals": "'{amount}' has more than {digits} decimals for {currency}.",
    "unknown_currency": "'{currency}' is not an ISO 4217 currency code.",
    "bad_card_number": "'{number}' is not a card number (8 to 19 digits).",
    "bad_check_digit": "The card number {number} is mistyped (check digit does not match).",
    "bad_uid": "'{uid}' is not an NFC UID (4, 7 or 10 bytes in hex).",
    "bad_pin_format": "A PIN is 4 to 12 digits.",
    "bad_cashier_id": "'{cashier_id}' is not a valid cashier id.",
    "bad_terminal_id": "'{terminal_id}' is not a valid terminal id (letters, digits, - and _).",
    "bad_key_id": "'{key_id}' is not a valid key id (1-16 of A-Z a-z 0-9 . _ -).",
    "bad_public_key": "A public key is 32 bytes written as 64 hex digits.",
    "bad_setting": "'{value}' is not a valid value for {name}.",
    "unknown_setting": "There is no setting named {name}.",
    "bad_format": "Unknown format {format}; use one of: {allowed}.",
    "bad_buyback_table": "The buyback price table is invalid: {detail}",
    "same_card": "Source and target are the same card.",
    "cannot_read_file": "Cannot read {path}: {detail}",
    "cannot_write_file": "Cannot write {path}: {detail}",
    "bad_key_file": "{path} is not a cardpos key file.",
    "key_id_needed": "{path} holds no key id; give one with --key-id.",
    "empty_file": "{path} holds no cards.",
    "cashier_exists": "Cashier {cashier_id} already exists.",
    "key_exists": "Key {key_id} already exists with a different public key.",
    "no_open_shift": "No shift is open. Open one first (cardpos shift open).",
    "shift_already_open": "A shift is already open. Close it first.",
    "not_shift_cashier": "{cashier_id} is not the cashier of the open shift ({shift_cashier}).",
    "no_shift": "There is no shift yet.",
    "no_such_shift": "There is no shift {shift_id}.",
    "no_such_cashier": "There is no active cashier {cashier_id}.",
    "no_such_supervisor": "There is no active supervisor {cashier_id}.",
    "no_such_purse": "Card {card} has no purse {purse}.",
    "no_store": "No terminal store in {path}. Create one with: cardpos init --terminal-id ID",
    "store_exists": "A terminal store already exists in {path}.",
    "store_too_new": "The store in {path} is version {version}; this cardpos reads up to "
                     "{supported}. Update cardpos.",
    "store_error": "The store {path} failed: {detail}",
    "store_cannot_open": "Cannot open the store {path}: {detail}",
    "store_read_only": "The store {path} is read-only; nothing was written.",
    "disk_full": "The disk is full; nothing was written. Free some space and try again.",
    "store_corrupt": "The store {path} is damaged: {detail}",
    "store_io_error": "The disk failed while using {path}: {detail}",
    "store_busy": "The store {path} is busy; try again.",
    # Card import
    "import_rejected": "The file has {count} error(s); nothing was imported.",
    "row_error": "line {line}, {column}: {problem}",
    "bad_program": "'{program}' is not a program name (a-z, 0-9, _ and -).",
    "bad_purse": "'{purse}' is not a purse name (a-z, 0-9 and _).",
    "bad_date": "'{value}' is not a date (YYYY-MM-DD).",
    "bad_status": "'{value}' is not a card status.",
    "bad_header": "the header must be {expected}, found {found}.",
    "wrong_column_count": "the line must have {expected} columns.",
    "unreadable_csv": "the file is not readable CSV: {detail}",
    "card_exists": "card {number} is already in the store.",
    "uid_taken": "UID {uid} belongs to another card.",
    "card_rows_disagree": "rows of card {number} disagree on uid, program, expiry, status or pin.",
    "duplicate_purse": "card {number} has purse {purse} twice.",
}

ZH_CN: dict[str, str] = {
    "approve": "已批准。",
    "decline": "已拒绝。",
    "needs_pin": "需要输入密码。",
    "needs_supervisor": "需要主管批准。",
    "needs_online": "此操作需要连接服务器，但目前无法连接。",
    "unknown_card": "本机不认识这张卡。",
    "not_activated": "这张卡尚未激活。",
    "already_active": "这张卡已经激活。",
    "frozen": "这张卡已被冻结，请联系发卡方。",
    "lost": "这张卡已挂失。请留下卡片并呼叫主管。",
    "expired": "这张卡已过期。",
    "closed": "这张卡已注销。",
    "denylisted": "这张卡已被列入黑名单。请留下卡片并呼叫主管。",
    "expiring_soon": "这张卡将在 {days_left} 天后过期。",
    "insufficient_balance": "余额不足：可用 {available}。",
    "partial_approval": "只能扣除 {requested_amount} 中的 {approved_amount}。",
    "unknown_purse": "这张卡没有名为 {purse} 的钱包。",
    "currency_mismatch": "本终端不接受 {currency}。",
    "nothing_to_redeem": "这张卡没有余额。",
    "balance_limit": "余额将超过上限 {limit}。",
    "topup_limit": "单次充值不得超过 {limit}。",
    "pin_required": "请输入密码。",
    "wrong_pin": "密码错误，还可以尝试 {tries_left} 次。",
    "pin_locked": "密码错误次数过多，已锁定。请联系发卡方。",
    "supervisor_required": "需要主管密码。",
    "offline_limit_transaction": "离线时单笔金额不得超过 {limit}。",
    "offline_limit_card_day": "这张卡今天的离线限额已用完（剩余 {remaining}）。",
    "offline_limit_terminal": "本终端的离线总额度已用完（剩余 {remaining}）。",
    "offline_too_long": "离线已超过 {hours} 小时，请先连接服务器。",
    "malformed_code": "无法识别此二维码。",
    "bad_signature": "此二维码不是真实的。",
    "unknown_key": "此二维码由未知的发卡密钥签名。",
    "expired_code": "此二维码已过期，请出示新的二维码。",
    "code_not_yet_valid": "此二维码尚未生效，请检查手机时间。",
    "replayed_code": "此二维码已被使用，请出示新的二维码。",
    "void_not_found": "本终端没有记录 {entry}。",
    "void_not_allowed": "此记录不能撤销（{kind}）。",
    "void_too_late": "只能撤销最近 {minutes} 分钟内的消费。",
    "already_voided": "这笔消费已经撤销。",
    "error": "出现错误。",
    "bad_input": "输入有误：{detail}",
    "amount_not_positive": "金额必须大于零。",
    "bad_amount": "“{amount}”不是有效金额（例如 12.50）。",
    "amount_too_large": "“{amount}” {currency} 超出了任何卡可持有的金额。",
    "too_many_decimals": "“{amount}”的小数位超过 {currency} 允许的 {digits} 位。",
    "unknown_currency": "“{currency}”不是 ISO 4217 货币代码。",
    "bad_card_number": "“{number}”不是卡号（8 至 19 位数字）。",
    "bad_check_digit": "卡号 {number} 输入有误（校验位不符）。",
    "bad_uid": "“{uid}”不是 NFC UID（4、7 或 10 字节的十六进制）。",
    "bad_pin_format": "密码为 4 至 12 位数字。",
    "bad_cashier_id": "“{cashier_id}”不是有效的收银员编号。",
    "bad_terminal_id": "“{terminal_id}”不是有效的终端编号（字母、数字、- 和 _）。",
    "bad_key_id": "“{key_id}”不是有效的密钥编号（1-16 个 A-Z a-z 0-9 . _ -）。",
    "bad_public_key": "公钥为 32 字节，写作 64 个十六进制数字。",
    "bad_setting": "“{value}”不是 {name} 的有效值。",
    "unknown_setting": "没有名为 {name} 的设置。",
    "bad_format": "未知格式 {format}，请使用：{allowed}。",
    "bad_buyback_table": "回购价格表无效：{detail}",
    "same_card": "转出卡和转入卡是同一张卡。",
    "cannot_read_file": "无法读取 {path}：{detail}",
    "cannot_write_file": "无法写入 {path}：{detail}",
    "bad_key_file": "{path} 不是 cardpos 密钥文件。",
    "key_id_needed": "{path} 中没有密钥编号，请用 --key-id 指定。",
    "empty_file": "{path} 中没有卡。",
    "cashier_exists": "收银员 {cashier_id} 已存在。",
    "key_exists": "密钥 {key_id} 已存在，且公钥不同。",
    "no_open_shift": "没有打开的班次，请先开班（cardpos shift open）。",
    "shift_already_open": "已有班次打开，请先交班。",
    "not_shift_cashier": "{cashier_id} 不是当前班次的收银员（{shift_cashier}）。",
    "no_shift": "还没有任何班次。",
    "no_such_shift": "没有班次 {shift_id}。",
    "no_such_cashier": "没有有效的收银员 {cashier_id}。",
    "no_such_supervisor": "没有有效的主管 {cashier_id}。",
    "no_such_purse": "卡 {card} 没有钱包 {purse}。",
    "no_store": "{path} 中没有终端数据。请先运行：cardpos init --terminal-id ID",
    "store_exists": "{path} 中已有终端数据。",
    "store_too_new": "{path} 中的数据版本为 {version}，本程序最高支持 {supported}，"
                     "请升级 cardpos。",
    "store_error": "数据库 {path} 出错：{detail}",
    "store_cannot_open": "无法打开数据库 {path}：{detail}",
    "store_read_only": "数据库 {path} 为只读，未写入任何内容。",
    "disk_full": "磁盘已满，未写入任何内容。请清理空间后重试。",
    "store_corrupt": "数据库 {path} 已损坏：{detail}",
    "store_io_error": "使用 {path} 时磁盘出错：{detail}",
    "store_busy": "数据库 {path} 正忙，请重试。",
    "import_rejected": "文件中有 {count} 处错误，未导入任何内容。",
    "row_error": "第 {line} 行，{column}：{problem}",
    "bad_program": "“{program}”不是有效的卡计划名（a-z、0-9、_ 和 -）。",
    "bad_purse": "“{purse}”不是有效的钱包名（a-z、0-9 和 _）。",
    "bad_date": "“{value}”不是日期（YYYY-MM-DD）。",
    "bad_status": "“{value}”不是卡状态。",
    "bad_header": "表头必须是 {expected}，实际为 {found}。",
    "wrong_column_count": "每行必须有 {expected} 列。",
    "unreadable_csv": "文件不是可读的 CSV：{detail}",
    "card_exists": "卡 {number} 已在数据库中。",
    "uid_taken": "UID {uid} 属于另一张卡。",
    "card_rows_disagree": "卡 {number} 的各行在 uid、计划、有效期、状态或密码上不一致。",
    "duplicate_purse": "卡 {number} 的钱包 {purse} 重复出现。",
}

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "zh_CN": ZH_CN}


class _Lenient(dict[str, Any]):
    """Format parameters where a missing one shows as `{name}` instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def text(code: str, lang: str = "en", **params: Any) -> str:
    """The message for `code` in `lang` (English if the language or the code is missing)."""
    template = CATALOGUES.get(lang, EN).get(code) or EN.get(code)
    if template is None:
        return code + (f" {params}" if params else "")
    return Formatter().vformat(template, (), _Lenient(params))


def default_language() -> str:
    """zh_CN when the environment's locale says Chinese, else English."""
    for var in ("CARDPOS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "zh_CN" if value.lower().startswith("zh") else "en"
    return "en"

"""Parse DCAP ECDSA quotes: SGX v3, TDX v4 (TD report 1.0) and TDX v5 (TD report 1.0 or 1.5).

Layouts follow Intel's "Intel SGX ECDSA Quote Library" and "Intel TDX DCAP Quoting Library"
references. All integers are little-endian. Every length is taken from the quote itself and
checked against what is left; bytes after the signature data (real quotes are often padded to a
fixed buffer size) are ignored. Any violation raises :class:`QuoteFormatError` with the offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NoReturn

from scm.attestation.errors import QuoteFormatError

MAX_QUOTE_BYTES = 256 * 1024
HEADER_BYTES = 48
ENCLAVE_REPORT_BYTES = 384
TD_REPORT10_BYTES = 584
TD_REPORT15_BYTES = 648

TEE_SGX = 0x00000000
TEE_TDX = 0x00000081
ATTESTATION_KEY_ECDSA_P256 = 2
CERT_PCK_CHAIN = 5
CERT_QE_REPORT = 6

BODY_SGX = 1
BODY_TD10 = 2
BODY_TD15 = 3
_BODY_SIZES = {
    BODY_SGX: ENCLAVE_REPORT_BYTES,
    BODY_TD10: TD_REPORT10_BYTES,
    BODY_TD15: TD_REPORT15_BYTES,
}


@dataclass(frozen=True)
class Header:
    """The 48-byte quote header."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int  # v3 only; 0 in later versions
    pce_svn: int  # v3 only; 0 in later versions
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class EnclaveReport:
    """An SGX enclave report: the application enclave's, or the quoting enclave's."""

    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG: the enclave's memory can be read by a debugger."""
        return bool(self.attributes[0] & 0x02)


@dataclass(frozen=True)
class TdReport:
    """A TD report (TDX 1.0; the last two fields only in TDX 1.5)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None

    @property
    def td_attributes_value(self) -> int:
        return int.from_bytes(self.td_attributes, "little")

    @property
    def debug(self) -> bool:
        """TD_ATTRIBUTES.DEBUG (bit 0): the host VMM can read and write the TD's state."""
        return bool(self.td_attributes[0] & 0x01)


Report = EnclaveReport | TdReport


@dataclass(frozen=True)
class Quote:
    """A parsed quote. ``raw`` keeps the original bytes; ``signed`` is what the attestation key
    signed (header and body)."""

    raw: bytes
    header: Header
    body_type: int
    report: Report
    signed_length: int
    signature: bytes
    attestation_key: bytes
    qe_report_raw: bytes
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes
    length: int  # bytes actually used; the rest of ``raw`` is padding

    @property
    def signed(self) -> bytes:
        return self.raw[: self.signed_length]

    @property
    def is_tdx(self) -> bool:
        return self.header.tee_type == TEE_TDX


class _Reader:
    """Sequential little-endian reads that fail with the offset of what is missing."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, size: int, what: str) -> bytes:
        if size > self.end - self.pos:
            raise QuoteFormatError(
                self.pos, f"{what} needs {size} bytes but only {self.end - self.pos} remain"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value


def parse_quote(data: bytes) -> Quote:
    """Parse ``data`` as a DCAP ECDSA-P256 quote; raise :class:`QuoteFormatError` if it is not."""
    data = bytes(data)
    if len(data) > MAX_QUOTE_BYTES:
        raise QuoteFormatError(
            MAX_QUOTE_BYTES, f"quote is {len(data)} bytes, more than the {MAX_QUOTE_BYTES} limit"
        )
    reader = _Reader(data)
    header = _parse_header(reader)
    body_type, report = _parse_body(reader, header)
    signed_length = reader.pos
    sig_len = reader.u32("signature data length")
    sig = _Reader(data, reader.pos, reader.pos + _bounded(reader, sig_len, "signature data"))
    signature = sig.take(64, "quote signature")
    attestation_key = sig.take(64, "attestation key")
    if header.version == 3:
        qe = _parse_qe_certification(sig)
        pck_chain = _parse_pck_chain(sig)
    else:
        cert_type = sig.u16("certification data type")
        if cert_type != CERT_QE_REPORT:
            raise QuoteFormatError(
                sig.pos - 2, f"certification data type {cert_type}, expected {CERT_QE_REPORT}"
            )
        size = sig.u32("certification data size")
        inner = _Reader(data, sig.pos, sig.pos + _bounded(sig, size, "QE report certification"))
        qe = _parse_qe_certification(inner)
        pck_chain = _parse_pck_chain(inner)
        sig.pos = inner.end
    qe_raw, qe_sig, qe_auth = qe
    return Quote(
        raw=data,
        header=header,
        body_type=body_type,
        report=report,
        signed_length=signed_length,
        signature=signature,
        attestation_key=attestation_key,
        qe_report_raw=qe_raw,
        qe_report=parse_enclave_report(qe_raw),
        qe_report_signature=qe_sig,
        qe_auth_data=qe_auth,
        pck_chain_pem=pck_chain,
        length=sig.end,
    )


def _bounded(reader: _Reader, size: int, what: str) -> int:
    if size > reader.end - reader.pos:
        raise QuoteFormatError(
            reader.pos, f"{what} declares {size} bytes but only {reader.end - reader.pos} remain"
        )
    return size


_HEADER = struct.Struct("<HHIHH16s20s")


def _parse_header(reader: _Reader) -> Header:
    if reader.end - reader.pos < HEADER_BYTES:
        _refuse_short_header(reader)
    version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data = _HEADER.unpack_from(
        reader.data, reader.pos
    )
    reader.pos += HEADER_BYTES  # one read: the header is most of the fields a quote has
    _check_version(version)
    _check_key_type(key_type)
    _check_tee_type(tee_type, version)
    if version > 3:
        qe_svn = pce_svn = 0  # reserved in v4 and v5
    return Header(version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data)


def _refuse_short_header(reader: _Reader) -> NoReturn:
    """A header cut short, read field by field: the first wrong or missing field is the error."""
    version = reader.u16("version")
    _check_version(version)
    key_type = reader.u16("attestation key type")
    _check_key_type(key_type)
    _check_tee_type(reader.u32("TEE type"), version)
    reader.u16("QE SVN")
    reader.u16("PCE SVN")
    reader.take(16, "QE vendor ID")
    reader.take(20, "user data")
    raise AssertionError("a header shorter than 48 bytes cannot be read in full")


def _check_version(version: int) -> None:
    if version not in (3, 4, 5):
        raise QuoteFormatError(0, f"unsupported quote version {version} (3, 4 and 5 are known)")


def _check_key_type(key_type: int) -> None:
    if key_type != ATTESTATION_KEY_ECDSA_P256:
        raise QuoteFormatError(2, f"attestation key type {key_type} is not ECDSA-P256 (2)")


def _check_tee_type(tee_type: int, version: int) -> None:
    if tee_type not in (TEE_SGX, TEE_TDX) or (version == 3 and tee_type != TEE_SGX):
        raise QuoteFormatError(4, f"TEE type {tee_type:#x} is not valid for a v{version} quote")


def _parse_body(reader: _Reader, header: Header) -> tuple[int, Report]:
    if header.version == 5:
        at = reader.pos
        body_type = reader.u16("body type")
        size = reader.u32("body size")
        expected = _BODY_SIZES.get(body_type)
        if expected is None:
            raise QuoteFormatError(at, f"unknown body type {body_type}")
        if size != expected:
            raise QuoteFormatError(
                at + 2, f"body type {body_type} needs {expected} bytes, not {size}"
            )
        if (body_type == BODY_SGX) != (header.tee_type == TEE_SGX):
            raise QuoteFormatError(at, f"body type {body_type} does not match the TEE type")
    else:
        body_type = BODY_SGX if header.tee_type == TEE_SGX else BODY_TD10
    raw = reader.take(_BODY_SIZES[body_type], "report body")
    if body_type == BODY_SGX:
        return body_type, parse_enclave_report(raw)
    return body_type, _parse_td_report(raw)


def parse_enclave_report(raw: bytes) -> EnclaveReport:
    """Decode a 384-byte SGX report body."""
    if len(raw) != ENCLAVE_REPORT_BYTES:
        raise QuoteFormatError(
            0, f"an enclave report is {ENCLAVE_REPORT_BYTES} bytes, not {len(raw)}"
        )
    isv_prod_id, isv_svn, config_svn = struct.unpack_from("<HHH", raw, 256)
    return EnclaveReport(
        cpu_svn=raw[0:16],
        misc_select=struct.unpack_from("<I", raw, 16)[0],
        isv_ext_prod_id=raw[32:48],
        attributes=raw[48:64],
        mr_enclave=raw[64:96],
        mr_signer=raw[128:160],
        config_id=raw[192:256],
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=config_svn,
        isv_family_id=raw[304:320],
        report_data=raw[320:384],
    )


def _parse_td_report(raw: bytes) -> TdReport:
    rtmrs = (raw[328:376], raw[376:424], raw[424:472], raw[472:520])
    v15 = len(raw) == TD_REPORT15_BYTES
    return TdReport(
        tee_tcb_svn=raw[0:16],
        mr_seam=raw[16:64],
        mr_signer_seam=raw[64:112],
        seam_attributes=raw[112:120],
        td_attributes=raw[120:128],
        xfam=raw[128:136],
        mr_td=raw[136:184],
        mr_config_id=raw[184:232],
        mr_owner=raw[232:280],
        mr_owner_config=raw[280:328],
        rtmrs=rtmrs,
        report_data=raw[520:584],
        tee_tcb_svn2=raw[584:600] if v15 else None,
        mr_servicetd=raw[600:648] if v15 else None,
    )


def _parse_qe_certification(reader: _Reader) -> tuple[bytes, bytes, bytes]:
    qe_report = reader.take(ENCLAVE_REPORT_BYTES, "QE report")
    qe_signature = reader.take(64, "QE report signature")
    auth_len = reader.u16("QE authentication data length")
    qe_auth = reader.take(auth_len, "QE authentication data")
    return qe_report, qe_signature, qe_auth


def _parse_pck_chain(reader: _Reader) -> bytes:
    at = reader.pos
    cert_type = reader.u16("certification data type")
    if cert_type != CERT_PCK_CHAIN:
        raise QuoteFormatError(
            at, f"certification data type {cert_type} is not a PCK certificate chain (5)"
        )
    size = reader.u32("certification data size")
    return reader.take(size, "PCK certificate chain")

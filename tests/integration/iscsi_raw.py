"""A small raw iSCSI initiator for protocol tests (RFC 7143), standard library only.

It builds and parses PDUs byte by byte so tests can send what real initiators never send:
wrong tags, corrupted digests, oversized segments, out-of-window CmdSNs. Nothing here hides
errors: every helper returns the PDU the target sent, and the tests judge it.

Layers:
  Pdu            a decoded BHS plus data segment
  Conn           one TCP connection: send/recv PDUs with optional digests, ExpStatSN tracking
  Session        the CmdSN sequence shared by the connections of one session (MC/S)
  login()        a full login (security + operational stages) with optional (mutual) CHAP
  scsi()         a SCSI command with Data-In, immediate/unsolicited data and R2T handling
"""

import hashlib
import os
import socket
import struct

# RFC 7143 11.1.1: opcodes.
OP_NOP_OUT = 0x00
OP_SCSI_CMD = 0x01
OP_TMF_REQ = 0x02
OP_LOGIN_REQ = 0x03
OP_TEXT_REQ = 0x04
OP_DATA_OUT = 0x05
OP_LOGOUT_REQ = 0x06
OP_NOP_IN = 0x20
OP_SCSI_RSP = 0x21
OP_TMF_RSP = 0x22
OP_LOGIN_RSP = 0x23
OP_TEXT_RSP = 0x24
OP_DATA_IN = 0x25
OP_LOGOUT_RSP = 0x26
OP_R2T = 0x31
OP_ASYNC = 0x32
OP_REJECT = 0x3F

RSVD_TAG = 0xFFFFFFFF

# RFC 7143 11.5.1: task management functions.
TMF_ABORT_TASK = 1
TMF_ABORT_TASK_SET = 2
TMF_LUN_RESET = 5
TMF_TARGET_WARM_RESET = 6

# SAM status codes.
GOOD = 0x00
CHECK_CONDITION = 0x02


class ConnClosed(Exception):
    """The target closed (or reset) the connection."""


class Timeout(Exception):
    """No PDU arrived in time."""


# ---------------------------------------------------------------------------------------------
# CRC32C (Castagnoli), reflected polynomial 0x82F63B78; RFC 7143 12.1 / RFC 3720 B.4.

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def digest_bytes(data):
    """The 4 wire bytes of a digest: the finished CRC in little-endian order."""
    return struct.pack("<I", crc32c(data))


# ---------------------------------------------------------------------------------------------
# Text keys (RFC 7143 6.1): key=value pairs, each NUL-terminated.

def encode_text(pairs):
    """pairs: list of (key, value) or a dict. Keeps order."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return b"".join(("%s=%s" % (k, v)).encode() + b"\0" for k, v in items)


def decode_text(data):
    """Returns the list of (key, value) pairs in order."""
    out = []
    for item in data.split(b"\0"):
        if not item:
            continue
        k, _, v = item.decode("utf-8", "replace").partition("=")
        out.append((k, v))
    return out


# ---------------------------------------------------------------------------------------------
# CHAP (RFC 1994, RFC 7143 12.1.3): response = MD5(id || secret || challenge).

def chap_response(ident, secret, challenge):
    if isinstance(secret, str):
        secret = secret.encode()
    return hashlib.md5(bytes([ident & 0xFF]) + secret + challenge).digest()


def hex_decode(v):
    v = v.strip()
    if v[:2] in ("0x", "0X"):
        return bytes.fromhex(v[2:])
    raise ValueError("not a hex CHAP value: %r" % v)


def hex_encode(b):
    return "0x" + b.hex()


# ---------------------------------------------------------------------------------------------
# PDUs.

class Pdu:
    """A target PDU: raw BHS, data segment, and decoded common fields."""

    def __init__(self, bhs, data=b""):
        self.bhs = bhs
        self.data = data
        self.opcode = bhs[0] & 0x3F
        self.flags = bhs[1]
        self.final = bool(bhs[1] & 0x80)
        self.ahs_len = bhs[4] * 4
        self.data_len = int.from_bytes(bhs[5:8], "big")
        self.lun = bhs[8:16]
        self.itt = self.u32(16)
        self.ttt = self.u32(20)
        self.statsn = self.u32(24)
        self.expcmdsn = self.u32(28)
        self.maxcmdsn = self.u32(32)

    def u32(self, off):
        return struct.unpack_from(">I", self.bhs, off)[0]

    def u16(self, off):
        return struct.unpack_from(">H", self.bhs, off)[0]

    # Login response (11.13).
    @property
    def login_status(self):
        return (self.bhs[36] << 8) | self.bhs[37]

    @property
    def tsih(self):
        return self.u16(14)

    @property
    def transit(self):
        return bool(self.bhs[1] & 0x80)

    @property
    def csg(self):
        return (self.bhs[1] >> 2) & 3

    @property
    def nsg(self):
        return self.bhs[1] & 3

    # SCSI Response (11.4) / Data-In (11.7).
    @property
    def response(self):
        return self.bhs[2]

    @property
    def status(self):
        return self.bhs[3]

    @property
    def has_status(self):
        """Data-In S bit."""
        return bool(self.bhs[1] & 0x01)

    @property
    def datasn(self):
        return self.u32(36)

    @property
    def buffer_offset(self):
        return self.u32(40)

    @property
    def residual(self):
        return self.u32(44)

    # R2T (11.8).
    @property
    def r2tsn(self):
        return self.u32(36)

    @property
    def desired_len(self):
        return self.u32(44)

    # Reject (11.17).
    @property
    def reason(self):
        return self.bhs[2]

    def sense(self):
        """(key, asc, ascq) from a SCSI Response's sense data, or None."""
        if self.opcode != OP_SCSI_RSP or len(self.data) < 2:
            return None
        slen = struct.unpack_from(">H", self.data, 0)[0]
        s = self.data[2:2 + slen]
        if len(s) < 3:
            return None
        if s[0] & 0x7F in (0x72, 0x73):
            return (s[1] & 0x0F, s[2], s[3] if len(s) > 3 else 0)
        return (s[2] & 0x0F, s[12] if len(s) > 12 else 0, s[13] if len(s) > 13 else 0)

    def text(self):
        return decode_text(self.data)

    def __repr__(self):
        return "<Pdu op=0x%02x flags=0x%02x itt=0x%08x b2=0x%02x b3=0x%02x dlen=%d>" % (
            self.opcode, self.flags, self.itt, self.bhs[2], self.bhs[3], self.data_len)


def bhs(opcode, immediate=False, flags=0, b2=0, b3=0, data_len=0, lun=b"\0" * 8, itt=0,
        f20=0, cmdsn=0, expstatsn=0, tail=b"\0" * 16, ahs_len=0):
    """A 48-byte BHS from its common fields; tail is bytes 32..47."""
    assert len(lun) == 8 and len(tail) == 16
    b = bytearray(48)
    b[0] = (0x40 if immediate else 0) | (opcode & 0x3F)
    b[1] = flags
    b[2] = b2
    b[3] = b3
    b[4] = ahs_len // 4
    b[5:8] = data_len.to_bytes(3, "big")
    b[8:16] = lun
    struct.pack_into(">III", b, 16, itt, f20, cmdsn)
    struct.pack_into(">I", b, 28, expstatsn)
    b[32:48] = tail
    return bytes(b)


def lun_bytes(lun):
    """SAM-2 single-level LUN, peripheral addressing for < 256, flat above."""
    if lun < 256:
        return bytes([0, lun]) + b"\0" * 6
    return bytes([0x40 | (lun >> 8), lun & 0xFF]) + b"\0" * 6


def login_bhs(isid, tsih, itt, cid, cmdsn, expstatsn, csg, nsg, transit, data_len,
              vmax=0, vmin=0):
    flags = (0x80 if transit else 0) | (csg << 2) | nsg
    b = bytearray(bhs(OP_LOGIN_REQ, immediate=True, flags=flags, b2=vmax, b3=vmin,
                      data_len=data_len, itt=itt, cmdsn=cmdsn, expstatsn=expstatsn))
    b[8:14] = isid
    struct.pack_into(">H", b, 14, tsih)
    struct.pack_into(">H", b, 20, cid)
    return bytes(b)


def scsi_cmd_bhs(itt, cmdsn, expstatsn, cdb, edtl, read=False, write=False, final=True,
                 lun=0, data_len=0, immediate=False):
    flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | 0x01
    cdb = cdb + b"\0" * (16 - len(cdb))
    b = bhs(OP_SCSI_CMD, immediate=immediate, flags=flags, data_len=data_len,
            lun=lun_bytes(lun), itt=itt, f20=edtl, cmdsn=cmdsn, expstatsn=expstatsn, tail=cdb)
    return b


def data_out_bhs(itt, ttt, expstatsn, datasn, offset, data_len, final, lun=0):
    # Bytes 32..35 reserved, 36 DataSN, 40 Buffer Offset, 44 reserved (RFC 7143 11.7).
    tail = b"\0" * 4 + struct.pack(">II", datasn, offset) + b"\0" * 4
    return bhs(OP_DATA_OUT, flags=0x80 if final else 0, data_len=data_len, lun=lun_bytes(lun),
               itt=itt, f20=ttt, expstatsn=expstatsn, tail=tail)


def cdb_read10(lba, blocks):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def cdb_write10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


CDB_TUR = bytes(6)


# ---------------------------------------------------------------------------------------------
# A connection.

class Conn:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.header_digest = False
        self.data_digest = False
        self.expstatsn = 0
        self.cid = 0
        self.session = None
        self.login_keys = {}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, b):
        self.sock.sendall(b)

    def send(self, header, data=b"", corrupt_hd=False, corrupt_dd=False):
        """Send a BHS and data segment, with padding and digests as negotiated."""
        out = bytearray(header)
        if self.header_digest:
            d = bytearray(digest_bytes(header))
            if corrupt_hd:
                d[0] ^= 0xFF
            out += d
        if data:
            pad = (-len(data)) % 4
            seg = bytes(data) + b"\0" * pad
            out += seg
            if self.data_digest:
                d = bytearray(digest_bytes(seg))
                if corrupt_dd:
                    d[0] ^= 0xFF
                out += d
        self.sock.sendall(out)

    def _recv_exact(self, n, timeout):
        buf = bytearray()
        self.sock.settimeout(timeout)
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                if buf:
                    raise ConnClosed("timed out mid-PDU")
                raise Timeout()
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnClosed(str(e))
            if not chunk:
                raise ConnClosed("EOF")
            buf += chunk
        return bytes(buf)

    def recv(self, timeout=None):
        """The next PDU; raises Timeout or ConnClosed. Skips nothing."""
        t = self.timeout if timeout is None else timeout
        h = self._recv_exact(48, t)
        ahs_len = h[4] * 4
        ahs = self._recv_exact(ahs_len, t) if ahs_len else b""
        if self.header_digest:
            d = self._recv_exact(4, t)
            if d != digest_bytes(h + ahs):
                raise AssertionError("bad header digest from the target")
        dlen = int.from_bytes(h[5:8], "big")
        data = b""
        if dlen:
            pad = (-dlen) % 4
            seg = self._recv_exact(dlen + pad, t)
            if self.data_digest:
                d = self._recv_exact(4, t)
                if d != digest_bytes(seg):
                    raise AssertionError("bad data digest from the target")
            data = seg[:dlen]
        p = Pdu(h, data)
        if p.opcode in (OP_SCSI_RSP, OP_NOP_IN, OP_TMF_RSP, OP_TEXT_RSP, OP_LOGOUT_RSP,
                        OP_REJECT, OP_ASYNC, OP_LOGIN_RSP) or \
                (p.opcode == OP_DATA_IN and p.has_status):
            # StatSN advances only on PDUs that carry status; NOP-In with TTT set does not.
            if not (p.opcode == OP_NOP_IN and p.itt == RSVD_TAG):
                self.expstatsn = (p.statsn + 1) & 0xFFFFFFFF
        if self.session is not None and p.opcode not in (OP_LOGIN_RSP, OP_REJECT):
            self.session.update_window(p)
        return p

    def expect_closed(self, timeout=3.0):
        """True if the target closes the connection within timeout (PDUs are drained)."""
        end = timeout
        try:
            while True:
                self.recv(timeout=end)
        except ConnClosed:
            return True
        except Timeout:
            return False

    def silent_for(self, seconds):
        """True if nothing arrives for `seconds` (and the connection stays open)."""
        try:
            p = self.recv(timeout=seconds)
            return p
        except Timeout:
            return None


class Session:
    """State shared by all connections of a session: ISID, TSIH, CmdSN window, tags."""

    def __init__(self, isid=None):
        self.isid = isid if isid is not None else bytes([0x80]) + os.urandom(5)
        self.tsih = 0
        self.cmdsn = 1
        self.expcmdsn = 1
        self.maxcmdsn = 1
        self.itt = 0x1000
        self.conns = []
        self.keys = {}

    def next_itt(self):
        self.itt = (self.itt + 1) & 0x7FFFFFFF
        return self.itt

    def take_cmdsn(self, immediate=False):
        sn = self.cmdsn
        if not immediate:
            self.cmdsn = (self.cmdsn + 1) & 0xFFFFFFFF
        return sn

    def update_window(self, p):
        self.expcmdsn = p.expcmdsn
        self.maxcmdsn = p.maxcmdsn


def login(host, port, initiator="iqn.2026-11.org.holdfast:test-init", target=None,
          session=None, cid=0, keys=None, chap=None, mutual=None, discovery=False,
          digests=False, security_keys=None, timeout=5.0):
    """Log in one connection. Returns (conn, last_response, all_keys_dict).

    On a login failure the returned response has a non-zero login_status and the connection
    is left as the target left it. chap = (user, secret); mutual = (user, secret) to verify
    the target with (RFC 7143 12.1.3). keys: operational keys (list of pairs) replacing the
    defaults. security_keys: replaces the whole first-PDU key list (for negative tests)."""
    c = Conn(host, port, timeout)
    s = session if session is not None else Session()
    c.cid = cid
    itt = s.next_itt()
    got = {}

    def exchange(csg, nsg, transit, kv):
        data = encode_text(kv)
        h = login_bhs(s.isid, s.tsih, itt, cid, s.cmdsn, c.expstatsn, csg, nsg, transit,
                      len(data))
        c.send(h, data)
        r = c.recv()
        if r.opcode != OP_LOGIN_RSP:
            raise AssertionError("expected a Login Response, got %r" % r)
        for k, v in r.text():
            got[k] = v
        s.update_window(r)
        return r

    if security_keys is not None:
        first = security_keys
    else:
        first = [("InitiatorName", initiator)]
        if discovery:
            first.append(("SessionType", "Discovery"))
        else:
            first.append(("TargetName", target))
        first.append(("AuthMethod", "CHAP,None" if chap else "None"))

    # Security stage: a real initiator always starts here (RFC 7143 6.3); CHAP if asked.
    r = exchange(0, 1, False if chap else True, first)
    if r.login_status != 0:
        return c, r, got
    if chap:
        if got.get("AuthMethod") != "CHAP":
            raise AssertionError("target chose AuthMethod=%s" % got.get("AuthMethod"))
        r = exchange(0, 1, False, [("CHAP_A", "5")])
        if r.login_status != 0:
            return c, r, got
        ident = int(got["CHAP_I"])
        chal = hex_decode(got["CHAP_C"])
        kv = [("CHAP_N", chap[0]), ("CHAP_R", hex_encode(chap_response(ident, chap[1], chal)))]
        my_chal = my_id = None
        if mutual:
            my_id = 0x5A
            my_chal = os.urandom(16)
            kv += [("CHAP_I", str(my_id)), ("CHAP_C", hex_encode(my_chal))]
        r = exchange(0, 1, True, kv)
        if r.login_status != 0:
            return c, r, got
        if mutual:
            want = chap_response(my_id, mutual[1], my_chal)
            if got.get("CHAP_N") != mutual[0] or hex_decode(got.get("CHAP_R", "0x")) != want:
                raise AssertionError("mutual CHAP: the target's CHAP_N/CHAP_R are wrong: %r"
                                     % ((got.get("CHAP_N"), got.get("CHAP_R")),))
    # Until the target agrees to move on to the operational stage.
    while not (r.transit and r.nsg == 1):
        r = exchange(0, 1, True, [])
        if r.login_status != 0:
            return c, r, got
    op = []

    if keys is None:
        keys = []
    defaults = [
        ("HeaderDigest", "CRC32C" if digests else "None"),
        ("DataDigest", "CRC32C" if digests else "None"),
    ]
    if not discovery:
        defaults += [("MaxConnections", "4"), ("InitialR2T", "Yes"), ("ImmediateData", "No"),
                     ("MaxBurstLength", "262144"), ("FirstBurstLength", "65536"),
                     ("MaxOutstandingR2T", "1"), ("DataPDUInOrder", "Yes"),
                     ("DataSequenceInOrder", "Yes"), ("ErrorRecoveryLevel", "0"),
                     ("DefaultTime2Wait", "0"), ("DefaultTime2Retain", "0")]
    defaults.append(("MaxRecvDataSegmentLength", "65536"))
    names = {k for k, _ in keys}
    op = op + [kv for kv in defaults if kv[0] not in names] + list(keys)
    if s.tsih != 0:
        # Leading-only keys must not appear on a connection added to a session.
        op = [kv for kv in op if kv[0] in ("HeaderDigest", "DataDigest",
                                           "MaxRecvDataSegmentLength", "InitiatorName",
                                           "TargetName", "AuthMethod", "SessionType")]
    csg = 1
    r = exchange(csg, 3, True, op)
    if r.login_status != 0:
        return c, r, got
    while not (r.transit and r.nsg == 3):
        r = exchange(1, 3, True, [])
        if r.login_status != 0:
            return c, r, got
    s.tsih = r.tsih
    c.session = s
    s.conns.append(c)
    s.keys.update(got)
    c.login_keys = got
    c.header_digest = got.get("HeaderDigest") == "CRC32C"
    c.data_digest = got.get("DataDigest") == "CRC32C"
    # The CmdSN of the login was not consumed (login requests are immediate); the first
    # full-feature command uses ExpCmdSN.
    s.cmdsn = r.expcmdsn
    return c, r, got


def login_ok(host, port, **kw):
    c, r, got = login(host, port, **kw)
    if r.login_status != 0:
        c.close()
        raise AssertionError("login failed with status 0x%04x" % r.login_status)
    return c


# ---------------------------------------------------------------------------------------------
# Full-feature helpers.

class Result:
    def __init__(self):
        self.rsp = None
        self.data = bytearray()
        self.r2ts = []
        self.others = []

    @property
    def status(self):
        return self.rsp.status if self.rsp is not None else None

    def sense(self):
        return self.rsp.sense() if self.rsp is not None and self.rsp.opcode == OP_SCSI_RSP else None


def scsi(conn, cdb, read_len=0, write_data=None, lun=0, immediate_len=0, unsolicited_len=0,
         mrdsl=None, on_r2t=None, timeout=5.0):
    """Run one SCSI command on conn. For writes, immediate_len bytes go in the command PDU
    and unsolicited_len more bytes as unsolicited Data-Out (TTT 0xffffffff); the rest is sent
    in answer to R2Ts. on_r2t(result, r2t) may inspect each R2T. Returns a Result."""
    s = conn.session
    itt = s.next_itt()
    res = Result()
    edtl = len(write_data) if write_data is not None else read_len
    seg_max = mrdsl or int(s.keys.get("MaxRecvDataSegmentLength", "8192"))
    imm = write_data[:immediate_len] if write_data is not None and immediate_len else b""
    unsol_end = len(imm) + unsolicited_len
    # F is set unless unsolicited Data-Out PDUs follow (RFC 7143 11.3.4).
    final = write_data is None or unsolicited_len == 0
    h = scsi_cmd_bhs(itt, s.take_cmdsn(), conn.expstatsn, cdb, edtl, read=read_len > 0,
                     write=write_data is not None, final=final, lun=lun, data_len=len(imm))
    conn.send(h, imm)
    if write_data is not None and unsolicited_len:
        send_data_out(conn, itt, RSVD_TAG, write_data, len(imm), unsol_end, seg_max, lun)
    while True:
        p = conn.recv(timeout=timeout)
        if p.opcode == OP_DATA_IN and p.itt == itt:
            off = p.buffer_offset
            if len(res.data) < off + len(p.data):
                res.data.extend(b"\0" * (off + len(p.data) - len(res.data)))
            res.data[off:off + len(p.data)] = p.data
            if p.has_status:
                res.rsp = p
                return res
        elif p.opcode == OP_R2T and p.itt == itt:
            res.r2ts.append(p)
            if on_r2t:
                on_r2t(res, p)
            send_data_out(conn, itt, p.ttt, write_data, p.buffer_offset,
                          p.buffer_offset + p.desired_len, seg_max, lun)
        elif p.opcode == OP_SCSI_RSP and p.itt == itt:
            res.rsp = p
            return res
        elif p.opcode == OP_NOP_IN and p.itt == RSVD_TAG:
            answer_nop_in(conn, p)
        else:
            res.others.append(p)
            if p.opcode == OP_REJECT:
                res.rsp = p
                return res


def send_data_out(conn, itt, ttt, data, start, end, seg_max, lun=0, datasn0=0):
    datasn = datasn0
    off = start
    while off < end:
        n = min(seg_max, end - off)
        h = data_out_bhs(itt, ttt, conn.expstatsn, datasn, off, n, off + n >= end, lun)
        conn.send(h, data[off:off + n])
        off += n
        datasn += 1


def answer_nop_in(conn, p):
    """RFC 7143 11.18: a NOP-In with a TTT asks for a NOP-Out echoing it."""
    if p.ttt != RSVD_TAG:
        s = conn.session
        h = bhs(OP_NOP_OUT, immediate=True, flags=0x80, lun=p.lun, itt=RSVD_TAG, f20=p.ttt,
                cmdsn=s.cmdsn, expstatsn=conn.expstatsn)
        conn.send(h)


def read10(conn, lba, blocks, lun=0, bs=512):
    return scsi(conn, cdb_read10(lba, blocks), read_len=blocks * bs, lun=lun)


def write10(conn, lba, data, lun=0, bs=512, **kw):
    return scsi(conn, cdb_write10(lba, len(data) // bs), write_data=data, lun=lun, **kw)


def tur(conn, lun=0):
    return scsi(conn, CDB_TUR, lun=lun)


def nop_out(conn, data=b"", itt=None, immediate=True):
    s = conn.session
    itt = s.next_itt() if itt is None else itt
    h = bhs(OP_NOP_OUT, immediate=immediate, flags=0x80, data_len=len(data), itt=itt,
            f20=RSVD_TAG, cmdsn=s.take_cmdsn(immediate), expstatsn=conn.expstatsn)
    conn.send(h, data)
    return itt


def tmf(conn, func, lun=0, rtt=RSVD_TAG, refcmdsn=0, timeout=5.0):
    """Send a TMF request (immediate) and return its TMF Response."""
    s = conn.session
    itt = s.next_itt()
    tail = struct.pack(">II", refcmdsn, 0) + b"\0" * 8
    h = bhs(OP_TMF_REQ, immediate=True, flags=0x80 | func, lun=lun_bytes(lun), itt=itt,
            f20=rtt, cmdsn=s.take_cmdsn(True), expstatsn=conn.expstatsn, tail=tail)
    conn.send(h)
    others = []
    while True:
        p = conn.recv(timeout=timeout)
        if p.opcode == OP_TMF_RSP and p.itt == itt:
            p.others = others
            return p
        others.append(p)


def logout(conn, reason=0, cid=None, timeout=5.0):
    s = conn.session
    itt = s.next_itt()
    h = bytearray(bhs(OP_LOGOUT_REQ, immediate=True, flags=0x80 | reason, itt=itt,
                      cmdsn=s.take_cmdsn(True), expstatsn=conn.expstatsn))
    struct.pack_into(">H", h, 20, conn.cid if cid is None else cid)
    conn.send(bytes(h))
    while True:
        p = conn.recv(timeout=timeout)
        if p.opcode == OP_LOGOUT_RSP and p.itt == itt:
            return p


def text_request(conn, pairs, timeout=5.0):
    """A Text request (e.g. SendTargets=All); follows C-bit continuations. Returns keys list."""
    s = conn.session
    itt = s.next_itt()
    data = encode_text(pairs)
    ttt = RSVD_TAG
    out = b""
    while True:
        h = bhs(OP_TEXT_REQ, immediate=True, flags=0x80, data_len=len(data), itt=itt, f20=ttt,
                cmdsn=s.take_cmdsn(True), expstatsn=conn.expstatsn)
        conn.send(h, data)
        p = conn.recv(timeout=timeout)
        if p.opcode != OP_TEXT_RSP:
            raise AssertionError("expected a Text Response, got %r" % p)
        out += p.data
        if p.final:
            return decode_text(out)
        ttt = p.ttt
        data = b""


def login_once(host, port, pairs, isid=None, tsih=0, cid=0, csg=1, nsg=3, transit=True,
               vmax=0, vmin=0, timeout=5.0):
    """Send one Login request with the given keys on a new connection; return (conn, rsp).
    rsp is None if the target closed the connection without answering."""
    c = Conn(host, port, timeout)
    data = encode_text(pairs)
    isid = isid if isid is not None else bytes([0x80]) + os.urandom(5)
    h = login_bhs(isid, tsih, 1, cid, 1, 0, csg, nsg, transit, len(data), vmax, vmin)
    c.send(h, data)
    try:
        return c, c.recv(timeout=timeout)
    except ConnClosed:
        return c, None

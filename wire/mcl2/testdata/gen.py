# Writes vectors.txt: python3 gen.py > vectors.txt
# An independent encoder of docs/mcl2.md, in Python, to write the test vectors.
import struct
H = lambda sender, seq, ver=2, flags=0, res=0, key=0: bytes([0xc1, ver, flags, res]) + struct.pack('>IQQ', key, sender, seq)
def msg(topic, payload): body = struct.pack('>H', len(topic)) + topic + payload; return b'\x01' + struct.pack('>I', len(body)) + body
def frag(topic, mid, i, n, size, piece): body = struct.pack('>HQIII', len(topic), mid, i, n, size) + topic + piece; return b'\x02' + struct.pack('>I', len(body)) + body
def rec(t, body): return bytes([t]) + struct.pack('>I', len(body)) + body
S = 0x0123456789abcdef
HDR = lambda seq: 'header sender=%#x seq=%d' % (S, seq)
def q(t): return '"' + t.decode() + '"'
out = []
def v(name, data, *want):
    out.append('# ' + name)
    h = data.hex()
    for k in range(0, len(h), 64): out.append('hex ' + h[k:k+64])
    out.extend(want); out.append('')
pay = bytes.fromhex('c4a0') + bytes(range(160))  # bin8 of 160 bytes: 162 bytes, one msgpack value
v('one message', H(S, 0) + msg(b'gps', bytes.fromhex('81a16101')), HDR(0), 'message topic="gps" payload=81a16101')
v('two messages in one datagram', H(S, 1) + msg(b'gps', b'\x01') + msg(b'imu', b'\xc3'), HDR(1), 'message topic="gps" payload=01', 'message topic="imu" payload=c3')
v('empty topic', H(S, 2) + msg(b'', b'\xc0'), HDR(2), 'message topic="" payload=c0')
v('first of two pieces: P = ceil(162/2) = 81', H(S, 3) + frag(b'cam', 7, 0, 2, 162, pay[0:81]), HDR(3), 'fragment topic="cam" id=7 index=0 count=2 size=162 piece=' + pay[0:81].hex())
v('last piece, the rest (81 bytes), and a message after it', H(S, 5) + frag(b'cam', 7, 1, 2, 162, pay[81:]) + msg(b'gps', b'\x02'), HDR(5), 'fragment topic="cam" id=7 index=1 count=2 size=162 piece=' + pay[81:].hex(), 'message topic="gps" payload=02')
v('sequence number and message id near 2^64', H(0xffffffffffffffff, 0xfffffffffffffffe) + frag(b'x', 0xffffffffffffffff, 1, 2, 129, bytes(64)), 'header sender=0xffffffffffffffff seq=18446744073709551614', 'fragment topic="x" id=18446744073709551615 index=1 count=2 size=129 piece=' + bytes(64).hex())
v('a seed datagram: not mcl/2', bytes.fromhex('92a367707301'), 'error ErrNotMCL2')
v('header without a record', H(S, 0), 'error ErrTruncated')
v('another version', H(S, 0, ver=3) + msg(b'gps', b'\x01'), 'error ErrUnsupported')
v('sealed: reserved for the authenticated mode', H(S, 0, flags=1, key=1) + msg(b'gps', b'\x01') + bytes(16), 'error ErrUnsupported')
v('a reserved flag', H(S, 0, flags=0x80) + msg(b'gps', b'\x01'), 'error ErrUnsupported')
v('reserved byte set', H(S, 0, res=1) + msg(b'gps', b'\x01'), 'error ErrHeader')
v('key id set on an unsealed datagram', H(S, 0, key=5) + msg(b'gps', b'\x01'), 'error ErrHeader')
v('sender id 0', H(0, 0) + msg(b'gps', b'\x01'), 'error ErrHeader')
v('a record that runs past the end: the records before it stand', H(S, 6) + msg(b'gps', b'\x01') + msg(b'gps', bytes.fromhex('81a16101'))[:-2], HDR(6), 'message topic="gps" payload=01', 'error ErrTruncated')
v('a record prefix cut short', H(S, 7) + msg(b'gps', b'\x01') + b'\x01\x00', HDR(7), 'message topic="gps" payload=01', 'error ErrTruncated')
v('an unknown record type is skipped', H(S, 8) + rec(0x7f, b'\xab\xcd') + msg(b'gps', b'\x01'), HDR(8), 'skip ErrUnknownType', 'message topic="gps" payload=01')
v('topic longer than 4096: the record is dropped, the next read', H(S, 9) + rec(1, struct.pack('>H', 4097) + b'\x00') + msg(b'gps', b'\x01'), HDR(9), 'error ErrTopicTooLong', 'message topic="gps" payload=01')
v('topic longer than its record', H(S, 10) + rec(1, struct.pack('>H', 5) + b'gp'), HDR(10), 'error ErrRecord')
v('empty payload', H(S, 11) + msg(b'gps', b''), HDR(11), 'error ErrEmptyPayload')
v('fragment shorter than its fields', H(S, 12) + rec(2, bytes(10)), HDR(12), 'error ErrRecord')
v('fragment count 1', H(S, 13) + frag(b'cam', 1, 0, 1, 3, b'\x01\x02\x03'), HDR(13), 'error ErrPiece')
v('pieces shorter than 64 bytes: 120 bytes in 2', H(S, 18) + frag(b'cam', 1, 1, 2, 120, bytes(60)), HDR(18), 'error ErrPiece')
v('fragment index past the count', H(S, 14) + frag(b'cam', 1, 2, 2, 162, bytes(81)), HDR(14), 'error ErrPiece')
v('piece of the wrong length', H(S, 15) + frag(b'cam', 1, 0, 2, 162, bytes(80)), HDR(15), 'error ErrPiece')
v('a cut whose last piece would be empty: 6401 bytes in 100 pieces of 65', H(S, 16) + frag(b'cam', 1, 0, 100, 6401, bytes(65)), HDR(16), 'error ErrPiece')
v('a claim of 4 GiB in 2 pieces', H(S, 17) + frag(b'cam', 1, 0, 2, 0xffffffff, b'\x01'), HDR(17), 'error ErrPiece')
print('// mcl/2 test vectors (docs/mcl2.md), written by an independent Python encoder of the')
print('// specification. Each: "# name", the datagram as "hex" lines, then what a receiver')
print('// finds: the header, each record, "error NAME" where it stops or drops a record,')
print('// "skip NAME" for a record it skips. Checked by TestVectors in ../vectors_test.go.')
print()
print('\n'.join(out).rstrip())

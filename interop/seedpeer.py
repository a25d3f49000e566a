#!/usr/bin/python3
"""Python 3 port of the seed's UDP module (mcl.network.udp), used as a peer
by the Go interoperability tests.

Faithful to the seed: same framing ((topic, payload) or (topic, n, N, piece)),
same fragmenting arithmetic (N = len(data)//MTU + 1), same reassembly buffer
keyed (sender IP, N, topic), same listener socket set-up and poll loop.

Differences, all required by Python 3 (or asked for by the tests):
- msgpack packs as Python 2 did: use_bin_type=False (str and bytes -> raw str);
- msgpack unpacks with raw=True (raw str -> bytes), strict_map_key=False;
- '/' -> '//', basestring -> (str, bytes), e.message -> str(e);
- IPv4 groups are supported (IP_MULTICAST_TTL, IP_ADD_MEMBERSHIP/INADDR_ANY);
- optional interface (Connection(..., iface=NAME));
- the small part of mcl.network.abstract the module needs is inlined.

Run with /usr/bin/python3 (Debian python3-msgpack). See README.md for the CLI.
"""
import sys
import json
import time
import select
import socket
import struct
import hashlib
import argparse
import threading

import msgpack

# Use a fixed port number for all UDP messages. Specify maximum transmission
# unit (MTU) to determine transmission fragmentation.
UDP_PORT = 26000
ALLOWED_MULTICAST_HOPS = 3
MTU = 60000
MTU_MAX = 65000

# Time in milliseconds to break out of I/O loop. This number determines the
# responsiveness of RawListeners to stop signals.
READ_TIMEOUT = 200

# Not in the seed: SO_RCVBUF for listeners when set (CLI --rcvbuf). None keeps
# the seed's behaviour (kernel default, about two 60 kB datagrams).
RECV_BUFFER_SIZE = None

_STRING = (str, bytes)


def dumps(obj):
    """Serialise like Python 2 msgpack: every str/bytes is a raw str."""
    return msgpack.packb(obj, use_bin_type=False)


def loads(data):
    """Deserialise like Python 2 msgpack: every raw str becomes bytes."""
    return msgpack.unpackb(data, raw=True, strict_map_key=False)


def _family(url):
    return socket.getaddrinfo(url, None)[0]


def _ifindex(iface):
    return socket.if_nametoindex(iface) if iface else 0


# --------------------------------------------------------------------------
# Minimal stand-ins for mcl.network.abstract.
# --------------------------------------------------------------------------
class _AbstractBroadcaster(object):
    def __init__(self, connection, topic=None):
        if topic is not None and not isinstance(topic, _STRING):
            raise TypeError("'topic' must be a string or None.")
        self.connection = connection
        self.topic = topic

    def publish(self, data, topic=None):
        if topic is not None and not isinstance(topic, _STRING):
            raise TypeError("'topic' must be a string or None.")


class _AbstractListener(object):
    def __init__(self, connection, topics=None):
        # Topics arrive as bytes (raw=True): compare against bytes.
        def enc(t):
            return t.encode('utf-8') if isinstance(t, str) else t
        if topics is None or isinstance(topics, _STRING):
            topics = enc(topics)
        elif isinstance(topics, (list, tuple)):
            topics = [enc(t) for t in topics]
        else:
            raise TypeError("'topics' must be a string, a list or None.")
        self.connection = connection
        self.topics = topics
        self.__callbacks = list()

    def subscribe(self, callback):
        if callback in self.__callbacks:
            return False
        self.__callbacks.append(callback)
        return True

    def unsubscribe(self, callback):
        if callback not in self.__callbacks:
            return False
        self.__callbacks.remove(callback)
        return True

    def __trigger__(self, data):
        for callback in list(self.__callbacks):
            callback(data)


# --------------------------------------------------------------------------
# Seed port.
# --------------------------------------------------------------------------
class RawBroadcaster(_AbstractBroadcaster):
    """Send data over the network using a UDP socket (see the seed)."""

    def __init__(self, connection, topic=None):
        if not isinstance(connection, Connection):
            msg = "The argument 'connection' must be an instance of a "
            msg += "UDP Connection()."
            raise TypeError(msg)
        super(RawBroadcaster, self).__init__(connection, topic=topic)

        self.__socket = None
        self.__sockaddr = None
        self.__is_open = False

        success = self._open()
        if not success:
            msg = "Could not connect to '%s'." % str(self.connection)
            raise IOError(msg)

    @property
    def is_open(self):
        return self.__is_open

    def _open(self):
        if not self.is_open:
            # Fetch address information.
            addrinfo = _family(self.connection.url)
            self.__sockaddr = (addrinfo[4][0], self.connection.port)
            self.__socket = socket.socket(addrinfo[0], socket.SOCK_DGRAM)
            ifindex = _ifindex(self.connection.iface)

            # Set Time-to-live (optional).
            ttl_message = struct.pack('@i', ALLOWED_MULTICAST_HOPS)
            if addrinfo[0] == socket.AF_INET6:
                self.__socket.setsockopt(socket.IPPROTO_IPV6,
                                         socket.IPV6_MULTICAST_HOPS,
                                         ttl_message)
                if ifindex:
                    self.__socket.setsockopt(socket.IPPROTO_IPV6,
                                             socket.IPV6_MULTICAST_IF,
                                             struct.pack('@I', ifindex))
            else:
                self.__socket.setsockopt(socket.IPPROTO_IP,
                                         socket.IP_MULTICAST_TTL,
                                         ttl_message)
                if ifindex:
                    # struct ip_mreqn {multiaddr, address, ifindex}
                    mreqn = struct.pack('@4s4si', bytes(4), bytes(4), ifindex)
                    self.__socket.setsockopt(socket.IPPROTO_IP,
                                             socket.IP_MULTICAST_IF, mreqn)

            self.__is_open = True
            return True
        else:
            return False

    def publish(self, data, topic=None):
        """Send data over UDP interface.

        Small messages: dumps((topic, payload)) in one datagram. Larger than
        MTU: payload = dumps(data) is cut into N = len//MTU + 1 pieces, each
        sent as dumps((topic, n, N, piece)) with n = 1..N (the last piece is
        empty when len is a multiple of MTU).
        """
        if self.is_open:
            super(RawBroadcaster, self).publish(data, topic=topic)
            if topic is None:
                topic = self.topic

            # Optimise for 'small' messages - assume data can be sent in a
            # single packet.
            packet = dumps((topic, data))

            # Send data in single packet.
            if len(packet) <= MTU:
                self.__socket.sendto(packet, self.__sockaddr)

            # Fragment data into multiple packets.
            else:
                # Accept inefficiency of double-encoding for 'large' messages.
                data = dumps(data)

                # Note: integer math does not account for the corner case
                # where the data length is a multiple of the MTU.
                data_len = len(data)
                packets = (data_len // MTU) + 1
                for packet in range(packets):
                    start_ptr = packet * MTU
                    end_ptr = min(data_len, (packet + 1) * MTU)
                    fragment = dumps((topic,
                                      packet + 1,
                                      packets,
                                      data[start_ptr:end_ptr]))
                    self.__socket.sendto(fragment, self.__sockaddr)
        else:
            msg = 'Connection must be opened before publishing.'
            raise IOError(msg)

    def close(self):
        if self.is_open:
            self.__socket.close()
            self.__is_open = False
            return True
        else:
            return False


class RawListener(_AbstractListener):
    """Receive data from the network using a UDP socket (see the seed).

    Callbacks receive {'topic': bytes, 'payload': obj} where every msgpack
    raw str of the payload is bytes.
    """

    def __init__(self, connection, topics=None):
        if not isinstance(connection, Connection):
            msg = "The argument 'connection' must be an instance of a "
            msg += "UDP Connection()."
            raise TypeError(msg)
        super(RawListener, self).__init__(connection, topics=topics)

        # Number of messages to buffer (unused, as in the seed).
        self.__buffer_size = 5

        self.__socket = None
        self.__stop_event = None
        self.__listen_thread = None
        self.__is_open = False
        self.__open_error = None

        success = self._open()
        if not success:
            msg = "Could not connect to '%s': %r" % (str(self.connection),
                                                    self.__open_error)
            raise IOError(msg)

    @property
    def is_open(self):
        return self.__is_open

    def _open(self):
        if not self.__is_open:
            try:
                # Fetch address information.
                addrinfo = _family(self.connection.url)
                ifindex = _ifindex(self.connection.iface)

                # Create socket.
                self.__socket = socket.socket(addrinfo[0], socket.SOCK_DGRAM)

                # Set to non-blocking mode.
                self.__socket.setblocking(False)

                # Allow multiple copies of this program on one machine.
                self.__socket.setsockopt(socket.SOL_SOCKET,
                                         socket.SO_REUSEADDR, 1)
                if RECV_BUFFER_SIZE:
                    self.__socket.setsockopt(socket.SOL_SOCKET,
                                             socket.SO_RCVBUF,
                                             RECV_BUFFER_SIZE)

                # Join group.
                group_name = socket.inet_pton(addrinfo[0], addrinfo[4][0])
                if addrinfo[0] == socket.AF_INET6:
                    group_addr = group_name + struct.pack('@I', ifindex)
                    self.__socket.setsockopt(socket.IPPROTO_IPV6,
                                             socket.IPV6_JOIN_GROUP,
                                             group_addr)
                elif ifindex:
                    # struct ip_mreqn {multiaddr, address, ifindex}
                    mreqn = struct.pack('@4s4si', group_name, bytes(4),
                                        ifindex)
                    self.__socket.setsockopt(socket.IPPROTO_IP,
                                             socket.IP_ADD_MEMBERSHIP, mreqn)
                else:
                    # struct ip_mreq {multiaddr, INADDR_ANY}
                    mreq = group_name + struct.pack('@I', socket.INADDR_ANY)
                    self.__socket.setsockopt(socket.IPPROTO_IP,
                                             socket.IP_ADD_MEMBERSHIP, mreq)

                # Bind socket to the address/port.
                self.__socket.bind((self.connection.url, self.connection.port))

                # Register the socket with the select poller.
                self.__poller = select.poll()
                self.__poller.register(self.__socket, select.POLLIN)

            # Could not create socket. Raise return failure.
            except Exception as e:
                self.__open_error = e
                return False

            # Start servicing UDP data on a new thread.
            self.__stop_event = threading.Event()
            self.__stop_event.clear()
            self.__listen_thread = threading.Thread(target=self.__read)
            self.__listen_thread.daemon = True
            self.__listen_thread.start()

            # Wait for thread to start. (As in the seed, is_alive is not
            # called, so this loop never runs.)
            while not self.__listen_thread.is_alive:
                time.sleep(0.1)  # pragma: no cover

            self.__is_open = True
            return True
        else:
            return False

    def __read(self):
        """Read data from UDP socket."""
        # Create buffer for receiving fragmented data.
        receive_buffer = dict()

        # Poll UDP socket and publish data.
        while not self.__stop_event.is_set():
            events = self.__poller.poll(READ_TIMEOUT)
            if events and events[0][1] & select.POLLIN:
                # Read multiple packets from the socket.
                socket_data = list()
                while True:
                    try:
                        socket_data.append(self.__socket.recvfrom(MTU_MAX))
                    except Exception:
                        break

                # Remarshal and issue data to callbacks.
                self.__remarshal(socket_data, receive_buffer)
            else:
                continue

        # Close socket on exiting thread.
        self.__socket.close()

    def __remarshal(self, socket_data, receive_buffer):
        for frame, sender in socket_data:
            # Unpack frame of data.
            try:
                frame = loads(frame)
                # Data transmitted in single packets.
                if len(frame) == 2:
                    complete = True
                    topic, payload = frame
                # Data transmitted in multiple packets.
                else:
                    complete = False
                    topic, packet, packets, payload = frame
            except Exception:
                continue

            # Topic filtering is enabled.
            if self.topics:
                if (isinstance(self.topics, _STRING) and
                        (topic != self.topics)):
                    continue
                elif topic not in self.topics:
                    continue

            # Data fits into one frame. Publish data immediately.
            if complete:
                try:
                    self.__trigger__({'topic': topic,
                                      'payload': payload})
                    continue
                except Exception as e:
                    msg = '\nCould not service UDP recieve callback. The '
                    msg += 'following exception was raised:\n\n%s\n'
                    raise Exception(msg % str(e))

            # Reassembly (see the seed): fragments are stored under the key
            # (sender IP, N, topic); a fragment landing on an occupied
            # (truthy) slot restarts the message; when no slot is None the
            # pieces are joined, unpacked and published.
            frame_identifier = (sender[0], packets, topic)

            if frame_identifier not in receive_buffer:
                array = [None] * packets
                receive_buffer[frame_identifier] = array

            elif receive_buffer[frame_identifier][packet - 1]:
                receive_buffer[frame_identifier] = [None] * packets

            # Store fragment.
            receive_buffer[frame_identifier][packet - 1] = payload

            # Publish data when all fragments have been received.
            if receive_buffer[frame_identifier].count(None) == 0:
                payload = b''.join(receive_buffer[frame_identifier])
                payload = loads(payload)
                self.__trigger__({'topic': topic,
                                  'payload': payload})

                # Free space in buffer.
                del receive_buffer[frame_identifier]

    def close(self):
        if self.is_open:
            # Stop thread and wait for thread to terminate.
            self.__stop_event.set()
            self.__listen_thread.join()

            # Close socket.
            self.__socket.close()
            self.__is_open = False
            return True
        else:
            return False


class Connection(object):
    """UDP connection parameters: group address, port, optional interface."""

    mandatory = ('url',)
    optional = {'port': UDP_PORT, 'iface': None}
    broadcaster = RawBroadcaster
    listener = RawListener

    def __init__(self, url, port=UDP_PORT, iface=None):
        if not isinstance(url, str):
            msg = "'url' must be a string."
            raise TypeError(msg)

        if not isinstance(port, int) or isinstance(port, bool):
            msg = 'Port must be an integer value.'
            raise TypeError(msg)
        elif (port < 1024) or (port > 65535):
            msg = 'The port must be a positive integer between 1024 and 65535.'
            raise TypeError(msg)

        if iface is not None and not isinstance(iface, str):
            raise TypeError("'iface' must be a string or None.")

        self.url = url
        self.port = port
        self.iface = iface

    def __str__(self):
        s = 'Connection(url=%r, port=%r' % (self.url, self.port)
        if self.iface:
            s += ', iface=%r' % self.iface
        return s + ')'


# --------------------------------------------------------------------------
# Test payloads and CLI.
# --------------------------------------------------------------------------
def make_payload(seed, index, size):
    """Deterministic payload number `index` of a run seeded `seed`.

    size > 0: bytes, (b'\\xff\\xc3\\x28' + sha256(b'K:I:0') + sha256(b'K:I:1')
    + ...)[:size] -- never valid UTF-8. size == 0: a small dict
    {'i': index, 'k': seed, 'text': 'h\\xe9llo'}.
    """
    if size <= 0:
        return {'i': index, 'k': seed, 'text': u'h\u00e9llo'}
    out = bytearray(b'\xff\xc3\x28')
    block = 0
    while len(out) < size:
        out += hashlib.sha256(('%s:%s:%d' % (seed, index, block))
                              .encode('ascii')).digest()
        block += 1
    return bytes(out[:size])


def _cmd_pub(args):
    broadcaster = RawBroadcaster(Connection(args.group, args.port, args.iface),
                                 topic=args.topic)
    try:
        for i in range(args.count):
            if i and args.interval > 0:
                time.sleep(args.interval)
            broadcaster.publish(make_payload(args.seed, i, args.size))
    finally:
        broadcaster.close()
    return 0


def _cmd_sub(args):
    global RECV_BUFFER_SIZE
    RECV_BUFFER_SIZE = args.rcvbuf
    topics = args.topic if args.topic else None
    lock = threading.Lock()
    done = threading.Event()
    state = {'n': 0}

    def on_message(data):
        packed = dumps(data['payload'])
        topic = data['topic']
        line = {'topic': topic.hex() if isinstance(topic, bytes) else None}
        if len(packed) <= 65536:
            line['payload_hex'] = packed.hex()
        line['sha256'] = hashlib.sha256(packed).hexdigest()
        line['len'] = len(packed)
        with lock:
            if done.is_set():
                return
            sys.stdout.write(json.dumps(line) + '\n')
            sys.stdout.flush()
            state['n'] += 1
            if args.count and state['n'] >= args.count:
                done.set()

    listener = RawListener(Connection(args.group, args.port, args.iface),
                           topics=topics)
    listener.subscribe(on_message)
    sys.stdout.write('READY\n')
    sys.stdout.flush()
    try:
        done.wait(args.timeout if args.timeout > 0 else None)
    except KeyboardInterrupt:
        pass
    with lock:
        done.set()
    listener.close()
    return 0


def _cmd_payload(args):
    sys.stdout.write(dumps(make_payload(args.seed, args.index,
                                        args.size)).hex() + '\n')
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description='Python peer of the seed UDP '
                                'protocol (mcl.network.udp).')
    sub = p.add_subparsers(dest='cmd')
    sub.required = True

    pp = sub.add_parser('pub', help='publish --count payloads')
    pp.add_argument('--group', required=True)
    pp.add_argument('--port', type=int, default=UDP_PORT)
    pp.add_argument('--topic', default=None)
    pp.add_argument('--count', type=int, default=1)
    pp.add_argument('--size', type=int, default=0)
    pp.add_argument('--iface', default=None)
    pp.add_argument('--interval', type=float, default=0.0)
    pp.add_argument('--seed', type=int, default=0)

    ps = sub.add_parser('sub', help='print received messages as JSON lines')
    ps.add_argument('--group', required=True)
    ps.add_argument('--port', type=int, default=UDP_PORT)
    ps.add_argument('--topic', action='append', default=None)
    ps.add_argument('--count', type=int, default=0)
    ps.add_argument('--timeout', type=float, default=10.0)
    ps.add_argument('--iface', default=None)
    ps.add_argument('--rcvbuf', type=int, default=None)

    pl = sub.add_parser('payload', help='print hex of a packed payload')
    pl.add_argument('--seed', type=int, default=0)
    pl.add_argument('--index', type=int, required=True)
    pl.add_argument('--size', type=int, required=True)

    args = p.parse_args(argv)
    try:
        return {'pub': _cmd_pub, 'sub': _cmd_sub,
                'payload': _cmd_payload}[args.cmd](args)
    except Exception as e:
        sys.stderr.write('seedpeer: %s: %s\n' % (type(e).__name__, e))
        return 1


if __name__ == '__main__':
    sys.exit(main())

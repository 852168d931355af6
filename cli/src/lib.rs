//! The herald command-line tool: sub, pub, request, reply and bench against a Herald broker.

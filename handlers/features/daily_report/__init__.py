"""The daily 早报 (SPEC §5.6): one message a day per group, exactly once.

`blocks` and `compose` are pure (what each block says, how the text fits the
channel); `knowledge`, `facts`, `demands_feed` and `highlights_feed` read what the
blocks need; `send` turns a day's row into actions (the group post, or the customer
group's mass send plus the owner's reminder, or an owner task) and records it;
`kind` is the due work that books and runs the rows; `manual` is the admin's
preview, send-now and history; `mass_send` follows customer groups' mass sends.
"""

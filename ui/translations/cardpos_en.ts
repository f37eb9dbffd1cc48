<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en_US">
<context>
    <name>SalePage</name>
    <message numerus="yes">
        <source>expires %1 (in %n day(s))</source>
        <translation>
            <numerusform>expires %1 (in %n day)</numerusform>
            <numerusform>expires %1 (in %n days)</numerusform>
        </translation>
    </message>
</context>
<context>
    <name>StatusLine</name>
    <message numerus="yes">
        <source>To sync: %n</source>
        <translation>
            <numerusform>To sync: %n</numerusform>
            <numerusform>To sync: %n</numerusform>
        </translation>
    </message>
</context>
<context>
    <name>Words</name>
    <message numerus="yes">
        <source>Valid until %1. %n day(s) left.</source>
        <translation>
            <numerusform>Valid until %1. %n day left.</numerusform>
            <numerusform>Valid until %1. %n days left.</numerusform>
        </translation>
    </message>
</context>
</TS>

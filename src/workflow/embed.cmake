# embed.cmake — turns a file into a C array holding its bytes and a NUL:
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
# Used for workflow.schema.json, so the schema has one source of truth (the
# .json file) and the binary carries it (workflow_schema_json in workflow.h).
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from ${IN} by embed.cmake; do not edit. */\nextern const char ${NAME}[];\nconst char ${NAME}[] = {\n${body}0x00};\n")

# exhibit - evidence intake and image inspection service.
#
#   make            release build: build/exhibit
#   make run        install missing packages, build, serve on 127.0.0.1:8080 (storage/)
#   make test       install, build with ASan+UBSan, run unit, e2e and fuzz-replay tests
#   make bench      benchmarks (release build)
#   make eval       reuse-detection recall / false matches, report half of ../shared/testdata/neardup
#   make vocab      retrain the visual vocabulary (src/vocab.bin) of reuse detection
#   make fuzz       libFuzzer targets (clang)
#   make lint       clang-format check and a warnings-as-errors build (make test runs it)
#   make deps       apt-get install what is missing (no-op when all present)

PKGS := vips libexif sqlite3 libmicrohttpd libcrypto jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lvl -lpthread -lm

CC ?= cc
WARN := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_REL := -O2 -g $(WARN)
CFLAGS_ASAN := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined $(WARN)
INC := -Iinclude $(PKG_CFLAGS)

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
# tools/reuse_eval.c is the reuse evaluation shared by eval_reuse and its unit test, not a tool.
EVAL_LIB := tools/reuse_eval.c
TOOL_SRC := $(filter-out $(EVAL_LIB),$(wildcard tools/*.c))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

SCHEMAS := $(sort $(wildcard schemas/*.sql))
UI_FILES := $(sort $(wildcard src/ui/*))

GEN := schema ui vocab
REL_OBJ := $(LIB_SRC:src/%.c=build/rel/%.o) $(GEN:%=build/rel/gen_%.o)
ASAN_OBJ := $(LIB_SRC:src/%.c=build/asan/%.o) $(GEN:%=build/asan/gen_%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
TOOL_BIN := $(TOOL_SRC:tools/%.c=build/tools/%)
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/asan/tests/replay_%)

.PHONY: all run test bench eval vocab fuzz deps clean test-build format lint check-deps
all: build/exhibit

build/rel/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS_REL) $(INC) -MMD -MP -c $< -o $@
build/asan/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS_ASAN) $(INC) -MMD -MP -c $< -o $@

build/gen/schema.c: $(SCHEMAS) tools/embed.sh
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@sh tools/embed.sh $@ schema_files $(SCHEMAS)
build/gen/ui.c: $(UI_FILES) tools/embed.sh
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@sh tools/embed.sh $@ ui_files $(UI_FILES)
# The visual vocabulary of the local-feature tier (tools/train_vocab.c made it).
build/gen/vocab.c: src/vocab.bin tools/embed.sh
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@sh tools/embed.sh $@ vocab_files src/vocab.bin
build/rel/gen_%.o: build/gen/%.c
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_REL) $(INC) -c $< -o $@
build/asan/gen_%.o: build/gen/%.c
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_ASAN) $(INC) -c $< -o $@

build/exhibit: build/rel/main.o $(REL_OBJ)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_REL) -o $@ $^ $(PKG_LIBS)
build/asan/exhibit: build/asan/main.o $(ASAN_OBJ)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_ASAN) -o $@ $^ $(PKG_LIBS)
build/asan/tests/%: tests/unit/%.c $(ASAN_OBJ) tests/unit/unit.h
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_ASAN) $(INC) -Itests/unit -o $@ $< $(ASAN_OBJ) $(PKG_LIBS)
build/asan/tests/replay_%: tests/fuzz/%.c tests/fuzz/replay.c $(ASAN_OBJ)
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_ASAN) $(INC) -o $@ $< tests/fuzz/replay.c $(ASAN_OBJ) $(PKG_LIBS)
build/tools/%: tools/%.c $(REL_OBJ)
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_REL) $(INC) -o $@ $< $(REL_OBJ) $(PKG_LIBS)
build/tools/train_vocab: tools/train_vocab.c $(EVAL_LIB) tools/reuse_eval.h $(REL_OBJ)
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_REL) $(INC) -Itools -o $@ $< $(EVAL_LIB) $(REL_OBJ) $(PKG_LIBS)
build/tools/eval_reuse: tools/eval_reuse.c $(EVAL_LIB) tools/reuse_eval.h $(REL_OBJ)
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_REL) $(INC) -o $@ $< $(EVAL_LIB) $(REL_OBJ) $(PKG_LIBS)
build/asan/tests/test_reuse_eval: tests/unit/test_reuse_eval.c $(EVAL_LIB) tools/reuse_eval.h \
                                  $(ASAN_OBJ) tests/unit/unit.h
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@$(CC) $(CFLAGS_ASAN) $(INC) -Itests/unit -Itools -o $@ $< $(EVAL_LIB) $(ASAN_OBJ) $(PKG_LIBS)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) build/gen/schema.c build/gen/ui.c build/gen/vocab.c
	@mkdir -p $(@D)
	@echo "  BUILD   $@"
	@clang -O1 -g -fsanitize=fuzzer,address,undefined $(filter-out -Werror,$(WARN)) $(INC) \
	    -o $@ $< $(LIB_SRC) build/gen/schema.c build/gen/ui.c build/gen/vocab.c $(PKG_LIBS)

-include $(wildcard build/rel/*.d build/asan/*.d)

deps:
	@sh tools/deps.sh

run: deps
	@$(MAKE) --no-print-directory build/exhibit
	./build/exhibit serve --data storage --listen 127.0.0.1:8080

test-build: build/asan/exhibit build/exhibit $(UNIT_BIN) $(REPLAY_BIN) $(TOOL_BIN)

test: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory -j2 test-build
	@sh tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory -j2 build/exhibit $(TOOL_BIN)
	@sh tools/bench.sh

# Reused-image detection on the report half of ../shared/testdata/neardup (skipped when absent);
# see the header of tools/eval_reuse.c for the options.
eval: deps
	@$(MAKE) --no-print-directory -j2 build/tools/eval_reuse
	./build/tools/eval_reuse ../shared/testdata/neardup --split report --threads 2

# Retrains the visual vocabulary (src/vocab.bin) on the tuning half of ../shared/testdata/neardup
# and the test photos that are not in that set (tools/train_vocab.c). Changes every word: bump
# FT_VOCAB_VERSION with it; servers then reindex.
vocab: deps
	@$(MAKE) --no-print-directory build/tools/train_vocab
	@sed -n 's/.*`jpg\/\([^`]*\)`.*/drewnoakes_\1/p' ../shared/testdata/neardup/SOURCES.md >build/vocab-skip.txt
	@for x in jpg JPG png webp heic avif; do find tests/data/photos -maxdepth 1 -name "*.$$x"; done | \
	    LC_ALL=C sort | grep -v -F -f build/vocab-skip.txt | tr '\n' '\0' | \
	    xargs -0 ./build/tools/train_vocab --out src/vocab.bin --tune-half ../shared/testdata/neardup

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
	@echo "fuzzers in build/fuzz/; run e.g. build/fuzz/fuzz_exif tests/fuzz/corpus/fuzz_exif"

FORMATTED := src/*.c include/exhibit/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tools/*.c \
             tools/*.h

format:
	clang-format -i $(FORMATTED)

# Style and warnings: clang-format must have nothing to change, and both builds compile with
# -Wall -Wextra -Werror (run first by make test, so CI checks it).
lint: deps
	@clang-format --dry-run --Werror $(FORMATTED)
	@$(MAKE) --no-print-directory -j2 build/exhibit build/asan/exhibit
	@echo "lint: clang-format clean, no compiler warnings"

clean:
	rm -rf build

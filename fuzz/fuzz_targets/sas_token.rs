#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ordergrid::fuzzing::sas_token(data));

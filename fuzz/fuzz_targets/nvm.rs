//! The settings/NVM image loader: any 256 bytes, and torn writes
//! (docs/reliability.md, "nvm").
//!
//! Input: a variant byte, a power-cut byte, a count of setting changes and
//! their (register, value) pairs, then the EEPROM image (256 bytes, erased
//! beyond the input).
//!
//! Oracle:
//! * loading any image gives settings the variant accepts (a slot's, or the
//!   factory defaults with a reason), and the same ones twice;
//! * saving settings the variant refuses is refused and writes nothing;
//! * a save cut off after any number of bytes leaves, at the next power-up,
//!   either the settings loaded before or the new ones, never anything else;
//! * a save after power returns always succeeds and is what loads.
#![no_main]

use firmware_core::map;
use firmware_core::nvm::{BYTES_PER_SAVE, ERASED, RamNvm, STORE_LEN, SaveError, SettingsStore};
use libfuzzer_sys::fuzz_target;
use smartpro_fuzz::{Bytes, variant};

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let variant = variant(input.u8());
    let cut = input.u8();
    let changes = usize::from(input.u8() % 8);
    let settings_regs: Vec<_> = map::settings().collect();
    let picks: Vec<(usize, u16)> =
        (0..changes).map(|_| (usize::from(input.u8()) % settings_regs.len(), input.u16())).collect();
    let mut image = [ERASED; STORE_LEN];
    let rest = input.take(STORE_LEN);
    image[..rest.len()].copy_from_slice(rest);

    let store = SettingsStore::new(variant);
    let mut nvm = RamNvm::<STORE_LEN>::from_bytes(image);
    let loaded = store.load(&mut nvm).expect("a RamNvm of STORE_LEN bytes loads");
    assert!(loaded.settings.check(variant).is_ok(), "loaded settings the variant refuses: {loaded:?}");
    assert_eq!(store.load(&mut nvm).unwrap(), loaded, "two loads of one image differ");
    assert_eq!(nvm.bytes(), &image, "loading wrote to the EEPROM");

    let mut new = loaded.settings;
    for (i, raw) in picks {
        let r = settings_regs[i];
        // Signed registers take the word as two's complement, as over Modbus.
        let value = if r.min < 0 { i64::from(raw as i16) } else { i64::from(raw) };
        let _ = new.set(r.id, value);
    }
    if new.check(variant).is_err() {
        assert!(matches!(store.save(&mut nvm, &new), Err(SaveError::Invalid(_))), "refused settings saved");
        assert_eq!(nvm.bytes(), &image, "a refused save wrote to the EEPROM");
        return;
    }
    // The power goes after `cut` bytes (0..=BYTES_PER_SAVE), or never (cut above that).
    let cut_at = usize::from(cut);
    if cut_at <= BYTES_PER_SAVE {
        nvm.cut_power_after(cut_at);
    }
    let saved = store.save(&mut nvm, &new);
    nvm.restore_power();
    let after = store.load(&mut nvm).unwrap();
    if cut_at > BYTES_PER_SAVE {
        assert!(saved.is_ok(), "a save with the power on failed: {saved:?}");
        assert_eq!(after.settings, new, "a completed save does not load back");
    } else {
        assert!(
            after.settings == loaded.settings || after.settings == new,
            "a save cut after {cut_at} bytes loads settings that are neither the old nor the new: {after:?}"
        );
    }
    let again = store.save(&mut nvm, &new);
    assert!(again.is_ok(), "a save after power-up failed: {again:?}");
    assert_eq!(store.load(&mut nvm).unwrap().settings, new, "the save after power-up does not load back");
});
